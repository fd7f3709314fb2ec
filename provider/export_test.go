package provider

// QueuedSubmitsForTest returns the number of application messages waiting
// in the room's group commit queue.
func (p *Provider) QueuedSubmitsForTest(room string) int {
	v, ok := p.hubRooms.Load(room)
	if !ok {
		return 0
	}
	hr := v.(*hubRoom)
	hr.qmu.Lock()
	defer hr.qmu.Unlock()
	return len(hr.queue)
}

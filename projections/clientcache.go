package projections

import "sync"

// maxClientCache bounds the client records clientCache keeps.
const maxClientCache = 1 << 16

// clientCache keeps the encoded client records (p/client/) that the read
// API Client has read, so that the per-request lookups of a client's
// registration (every local operation, every delivery to local members)
// do not each search Pebble. Client records change only by
// ClientRegistered and ClientRemoved, rare events: a committed command
// that wrote one empties the whole cache.
//
// A reader fills the cache only if no invalidation happened since it
// started reading (gen), so a value read before a commit is never stored
// after that commit's invalidation. Between a commit and its
// invalidation a reader may still get the previous value, as if it had
// read just before the commit; Apply returns after both.
type clientCache struct {
	mu  sync.Mutex
	gen uint64
	m   map[string][]byte
}

// get returns the cached encoding of k, or the generation to pass to put.
func (c *clientCache) get(k []byte) ([]byte, uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[string(k)]
	return v, c.gen, ok
}

// put caches v (not retained elsewhere) as k's encoding if nothing was
// invalidated since generation gen.
func (c *clientCache) put(k, v []byte, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if c.m == nil || len(c.m) >= maxClientCache {
		c.m = make(map[string][]byte)
	}
	c.m[string(k)] = v
}

// invalidate empties the cache.
func (c *clientCache) invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.m = nil
}

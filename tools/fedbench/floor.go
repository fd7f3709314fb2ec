package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// FloorResult is the measurement of the floor pipeline (runFloor): the
// same hops as the federation run with nothing but the transport and one
// durable write per provider.
type FloorResult struct {
	Messages int `json:"messages"`
	// AcceptedPerSec is the rate of the hub's answers to the senders,
	// PerSec the rate at which messages reached both followers.
	AcceptedPerSec float64 `json:"accepted_per_sec"`
	Seconds        float64 `json:"seconds"`
	PerSec         float64 `json:"messages_per_sec"`
	Latency        Latency `json:"submit_latency"`
	CPUSeconds     float64 `json:"cpu_seconds"`
	CPUPerMsgM     float64 `json:"cpu_per_message_ms"`
	Bodies         int64   `json:"notify_bodies"`
}

// floorNode is one provider of the floor pipeline: a mutual-TLS HTTP/2
// server in front of a Pebble database written with fsync.
type floorNode struct {
	db   *pebble.DB
	srv  *http.Server
	ln   net.Listener
	done chan error
	seq  atomic.Uint64
	got  atomic.Int64 // messages stored (followers)
}

// runFloor measures the least any implementation of the benchmark's
// message path can cost on this machine: senders at c.example POST each
// message to a.example over mutual TLS (as /submitMessage), a.example
// stores it in Pebble with an fsync (concurrent commits share one, as in
// a group commit) and answers; a worker per follower POSTs everything
// stored since its last round as one body (as /notify), and each follower
// stores the body with an fsync before answering 201. Nothing else: no
// Raft, no event log or projections, no MLS or MIMI decoding or checks,
// no inbox, no receiving clients. It runs with the federation run's
// certificates, message size and concurrency; the ratio of its
// throughput to the echo's bounds what the federation run could reach.
func runFloor(ctx context.Context, f *fabric, dir string, messages, concurrency, size, warmup int) (*FloorResult, error) {
	nodes := map[string]*floorNode{}
	defer func() {
		for _, n := range nodes {
			n.close()
		}
	}()
	for _, d := range []string{hubDomain, bDomain, cDomain} {
		n, err := openFloorNode(f, filepath.Join(dir, "floor-"+d), d)
		if err != nil {
			return nil, err
		}
		nodes[d] = n
	}
	hub := nodes[hubDomain]
	for _, d := range []string{bDomain, cDomain} {
		nodes[d].serve(nodes[d].followerHandler())
	}
	clientOf := func(from, to string) (*http.Client, error) {
		cert, err := tls.LoadX509KeyPair(f.nodes[from].certFile, f.nodes[from].keyFile)
		if err != nil {
			return nil, err
		}
		return &http.Client{Transport: f.clientTransport(cert, to), Timeout: 30 * time.Second}, nil
	}

	// The hub's fanout: one worker per follower, one body per round.
	type queue struct {
		mu   sync.Mutex
		msgs [][]byte
		wake chan struct{}
	}
	queues := map[string]*queue{}
	var bodies atomic.Int64
	var wg sync.WaitGroup
	fctx, cancel := context.WithCancel(ctx)
	defer func() { cancel(); wg.Wait() }()
	errc := make(chan error, 2)
	for _, d := range []string{bDomain, cDomain} {
		q := &queue{wake: make(chan struct{}, 1)}
		queues[d] = q
		hc, err := clientOf(hubDomain, d)
		if err != nil {
			return nil, err
		}
		url := "https://" + nodes[d].ln.Addr().String() + "/notify"
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-fctx.Done():
					return
				case <-q.wake:
				}
				for {
					q.mu.Lock()
					batch := q.msgs
					q.msgs = nil
					q.mu.Unlock()
					if len(batch) == 0 {
						break
					}
					var body []byte
					for _, m := range batch {
						body = binary.BigEndian.AppendUint32(body, uint32(len(m)))
						body = append(body, m...)
					}
					if err := floorPost(fctx, hc, url, body, http.StatusCreated); err != nil {
						errc <- err
						return
					}
					bodies.Add(1)
				}
			}
		}()
	}
	hub.serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := hub.db.Set(binary.BigEndian.AppendUint64(nil, hub.seq.Add(1)), b, pebble.Sync); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		for _, q := range queues {
			q.mu.Lock()
			q.msgs = append(q.msgs, b)
			q.mu.Unlock()
			select {
			case q.wake <- struct{}{}:
			default:
			}
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(binary.BigEndian.AppendUint64(nil, uint64(time.Now().UnixMilli())))
	}))

	relay, err := clientOf(cDomain, hubDomain)
	if err != nil {
		return nil, err
	}
	defer relay.Transport.(*http.Transport).CloseIdleConnections()
	url := "https://" + hub.ln.Addr().String() + "/submitMessage"
	body := makePayload(0, 0, 0, size)
	post := func() (string, error) { return "", floorPost(ctx, relay, url, body, http.StatusOK) }
	for range warmup {
		if _, err := post(); err != nil {
			return nil, fmt.Errorf("floor warmup: %w", err)
		}
	}
	waitStored := func(want int64) error {
		deadline := time.Now().Add(time.Minute)
		for nodes[bDomain].got.Load() < want || nodes[cDomain].got.Load() < want {
			select {
			case err := <-errc:
				return err
			default:
			}
			if time.Now().After(deadline) {
				return errors.New("floor: followers did not receive every message")
			}
			time.Sleep(100 * time.Microsecond)
		}
		return nil
	}
	if err := waitStored(int64(warmup)); err != nil {
		return nil, err
	}
	bodies.Store(0)
	cpu0 := cpuTime()
	start := time.Now()
	res, err := baselineRound(messages, concurrency, post)
	if err != nil {
		return nil, err
	}
	if err := waitStored(int64(warmup + messages)); err != nil {
		return nil, err
	}
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	for _, d := range []string{bDomain, cDomain} {
		if got := nodes[d].got.Load(); got != int64(warmup+messages) {
			return nil, fmt.Errorf("floor: %s stored %d messages, want %d", d, got, warmup+messages)
		}
	}
	return &FloorResult{
		Messages: messages, AcceptedPerSec: res.PerSec, Seconds: elapsed.Seconds(), PerSec: float64(messages) / elapsed.Seconds(),
		Latency: res.Latency, CPUSeconds: cpu.Seconds(), CPUPerMsgM: cpu.Seconds() * 1e3 / float64(messages),
		Bodies: bodies.Load(),
	}, nil
}

// openFloorNode opens a Pebble database in dir and listens on loopback
// for domain; serve starts answering.
func openFloorNode(f *fabric, dir, domain string) (*floorNode, error) {
	db, err := pebble.Open(dir, &pebble.Options{})
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(f.nodes[domain].certFile, f.nodes[domain].keyFile)
	if err != nil {
		db.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		db.Close()
		return nil, err
	}
	n := &floorNode{db: db, ln: ln}
	n.srv = &http.Server{TLSConfig: f.serverTLS(cert), ReadHeaderTimeout: 10 * time.Second}
	return n, nil
}

// serve serves h with the node's certificate, requiring a client
// certificate of the fabric's CA.
func (n *floorNode) serve(h http.Handler) {
	n.srv.Handler = h
	n.done = make(chan error, 1)
	go func() { n.done <- n.srv.ServeTLS(n.ln, "", "") }()
}

// followerHandler stores each /notify body with an fsync and answers 201.
func (n *floorNode) followerHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		count := int64(0)
		for rest := b; len(rest) >= 4; count++ {
			l := int(binary.BigEndian.Uint32(rest))
			if l > len(rest)-4 {
				http.Error(w, "truncated", http.StatusBadRequest)
				return
			}
			rest = rest[4+l:]
		}
		if err := n.db.Set(binary.BigEndian.AppendUint64(nil, n.seq.Add(1)), b, pebble.Sync); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		n.got.Add(count)
		w.WriteHeader(http.StatusCreated)
	})
}

func (n *floorNode) close() {
	if n.done != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n.srv.Shutdown(ctx)
		<-n.done
	} else {
		n.ln.Close()
	}
	n.db.Close()
}

// floorPost POSTs body to url and checks the status.
func floorPost(ctx context.Context, hc *http.Client, url string, body []byte, want int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("floor: %s: status %d", url, resp.StatusCode)
	}
	return nil
}

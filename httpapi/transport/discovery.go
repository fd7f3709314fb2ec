package transport

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/openmimi/mimi/mimi"
)

// dirEntry is a cached or in-flight directory fetch. dir, err and expires
// are written before done is closed and never after.
type dirEntry struct {
	done    chan struct{}
	dir     *mimi.Directory
	err     error
	expires time.Time
}

// Directory returns target's directory document
// (draft-ralston-mimi-protocol-02, Section 5.1), fetched from
// https://<target>/.well-known/mimi-protocol-directory, validated with
// mimi.ParseDirectory, required to list only https endpoints on target or
// its subdomains (ErrForeignEndpoint), and cached for the DirectoryTTL.
// Concurrent callers for the same target share one fetch (and its
// outcome). A failed fetch is not cached. The response's Content-Type is
// not checked; the body is parsed strictly instead. The result is a copy
// the caller may keep.
func (c *Client) Directory(ctx context.Context, target string) (*mimi.Directory, error) {
	d, _, err := c.directory(ctx, target)
	return d, err
}

// Invalidate drops target's cached directory, so that the next Directory
// or Post fetches it again (draft-ralston-mimi-protocol-02, Section 5.1).
// A fetch already in flight is not affected, but its result is not cached.
func (c *Client) Invalidate(target string) {
	t, err := canonicalDomain(target)
	if err != nil {
		return
	}
	c.mu.Lock()
	delete(c.dirs, t)
	c.mu.Unlock()
}

// directory is Directory, also reporting whether the directory was fetched
// by this call (or one running concurrently) rather than taken from the
// cache.
func (c *Client) directory(ctx context.Context, target string) (*mimi.Directory, bool, error) {
	t, err := canonicalDomain(target)
	if err != nil {
		return nil, false, fmt.Errorf("%w %q: %w", ErrBadTarget, clip(target), err)
	}
	c.mu.Lock()
	if e, ok := c.dirs[t]; ok {
		select {
		case <-e.done:
			if e.err == nil && time.Now().Before(e.expires) {
				c.mu.Unlock()
				return copyDirectory(e.dir), false, nil
			}
		default:
			c.mu.Unlock()
			select {
			case <-e.done:
			case <-ctx.Done():
				return nil, false, fmt.Errorf("transport: directory of %s: %w", t, ctx.Err())
			}
			if e.err != nil {
				return nil, false, e.err
			}
			return copyDirectory(e.dir), true, nil
		}
	}
	e := &dirEntry{done: make(chan struct{})}
	c.dirs[t] = e
	c.mu.Unlock()

	d, err := c.fetchDirectory(ctx, t)

	c.mu.Lock()
	e.dir, e.err, e.expires = d, err, time.Now().Add(c.ttl)
	if err != nil && c.dirs[t] == e {
		delete(c.dirs, t)
	}
	close(e.done)
	c.mu.Unlock()
	if err != nil {
		return nil, false, err
	}
	return copyDirectory(d), true, nil
}

func (c *Client) fetchDirectory(ctx context.Context, target string) (*mimi.Directory, error) {
	u := "https://" + target + mimi.WellKnownDirectory
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("transport: directory of %s: %w", target, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("transport: directory of %s: %w", target, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return nil, &StatusError{URL: u, StatusCode: resp.StatusCode, Body: snippet(b)}
	}
	b, err := readLimited(resp.Body, maxDirectoryBytes)
	if err != nil {
		return nil, fmt.Errorf("transport: directory of %s: %w", target, err)
	}
	d, err := mimi.ParseDirectory(b)
	if err != nil {
		return nil, fmt.Errorf("transport: directory of %s: %w", target, err)
	}
	if err := checkDirectoryHosts(d, target); err != nil {
		return nil, fmt.Errorf("transport: directory of %s: %w", target, err)
	}
	return d, nil
}

func copyDirectory(d *mimi.Directory) *mimi.Directory {
	c := *d
	return &c
}

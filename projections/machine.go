package projections

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log"
	"os"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/openmimi/mimi/eventlog"
)

// Options tunes Open. The zero value is the single-node embedded default.
type Options struct {
	// FS is the filesystem (default vfs.Default). Tests may pass
	// vfs.NewMem().
	FS vfs.FS
	// CacheSize is Pebble's block cache size (default 64 MiB).
	CacheSize int64
	// Logger receives Pebble's log output (default: errors only, to the
	// standard logger).
	Logger pebble.Logger
	// NoCache disables the cache of committed state kept across Applies
	// (for testing that it changes nothing).
	NoCache bool
}

// StateDir is the Pebble directory inside a Machine's directory. Tools may
// open it read-only (with pebble.Open) while the Machine is closed.
const StateDir = "state"

// restoreDir and restoreMarker implement an atomic swap on Restore.
const (
	stateDir      = StateDir
	restoreDir    = "state.restore"
	restoreMarker = "RESTORE-COMMIT"
)

// Machine is the deterministic state machine over one Pebble DB holding the
// event log (package eventlog) and every projection of the provider's state
// (draft-ralston-mimi-protocol-02, Section 4.3.1 "Server State", and
// Section 6.1 "Room state"). Apply is driven by the Raft FSM in log order;
// the read APIs may be called concurrently with it.
type Machine struct {
	fs   vfs.FS
	dir  string
	opts Options

	applyMu sync.Mutex   // serialises Apply and Restore
	dbMu    sync.RWMutex // guards db against Restore's swap and Close
	db      *pebble.DB
	closed  bool
	applied atomic.Uint64
	cache   *stateCache // guarded by applyMu; nil if disabled
	enc     encoder     // guarded by applyMu: shared by the Apply txs
	// cursors mirrors the committed fanout and inbox cursors for the
	// read APIs.
	cursors cursorTable
	// clients caches client records for Client; clientsDirty (guarded
	// by applyMu) says a staged command wrote one, so the next commit
	// must invalidate it.
	clients      clientCache
	clientsDirty bool
}

// Result is the outcome of Apply.
type Result struct {
	// Duplicate: the raft index was already applied; nothing happened.
	Duplicate bool
	// Events are the events appended, with Seq and RoomSeq set.
	Events []eventlog.Event
	// Claims holds one entry per claim operation, in order.
	Claims []ClaimResult
	// Err is why the command was rejected (nothing but the applied index
	// changed), or, if errors.Is(Err, ErrStorage), a fatal storage error
	// (the applied index was not recorded).
	Err error
}

// ClaimResult is the outcome of one ClaimRequest.
type ClaimResult struct {
	Client string
	// Found reports whether a KeyPackage was claimed.
	Found bool
	// KeyPackage is the claimed KeyPackage (its state after the claim).
	KeyPackage KeyPackage
	// Seq is the log position of the KeyPackageClaimed event.
	Seq uint64
}

type quietLogger struct{}

func (quietLogger) Infof(string, ...any) {}
func (quietLogger) Errorf(format string, args ...any) {
	log.Printf("pebble: "+format, args...)
}
func (quietLogger) Fatalf(format string, args ...any) {
	log.Printf("pebble: fatal: "+format, args...)
	os.Exit(1)
}

// Open opens or creates the Machine stored in dir (Pebble in dir/state).
func Open(dir string) (*Machine, error) { return OpenWithOptions(dir, Options{}) }

// OpenWithOptions is Open with options.
func OpenWithOptions(dir string, o Options) (*Machine, error) {
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.Logger == nil {
		o.Logger = quietLogger{}
	}
	m := &Machine{fs: o.FS, dir: dir, opts: o}
	if err := m.fs.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("projections: open %s: %w", dir, err)
	}
	if err := m.recoverRestore(); err != nil {
		return nil, err
	}
	db, err := m.openDB(m.path(stateDir))
	if err != nil {
		return nil, err
	}
	m.db = db
	idx, err := readApplied(db)
	if err != nil {
		db.Close()
		return nil, err
	}
	m.applied.Store(idx)
	if err := m.resetCache(); err != nil {
		db.Close()
		return nil, err
	}
	return m, nil
}

// resetCache (re)creates the cross-Apply cache from the DB.
func (m *Machine) resetCache() error {
	m.cache = nil
	m.clients.invalidate()
	if err := m.cursors.load(m.db); err != nil {
		return err
	}
	if m.opts.NoCache {
		return nil
	}
	c, err := newStateCache(m.db)
	if err != nil {
		return err
	}
	m.cache = c
	return nil
}

func (m *Machine) path(name string) string { return m.fs.PathJoin(m.dir, name) }

// Defaults for the Pebble options.
const (
	defaultCacheSize    = 64 << 20
	defaultMemTableSize = 64 << 20
)

func (m *Machine) openDB(path string) (*pebble.DB, error) {
	po := &pebble.Options{FS: m.fs, Logger: m.opts.Logger, CacheSize: defaultCacheSize, MemTableSize: defaultMemTableSize}
	if m.opts.CacheSize > 0 {
		po.CacheSize = m.opts.CacheSize
	}
	// Apply reads many keys that are absent or live in one level only:
	// Bloom filters spare the other levels.
	for i := range po.Levels {
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open(path, po)
	if err != nil {
		return nil, fmt.Errorf("projections: open pebble %s: %w", path, err)
	}
	return db, nil
}

func readApplied(r pebble.Reader) (uint64, error) {
	v, closer, err := r.Get(keyApplied)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, storageErr("read applied index", err)
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: applied index of %d bytes", ErrCorruptState, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// AppliedIndex returns the last Raft index passed to Apply (or restored).
func (m *Machine) AppliedIndex() uint64 { return m.applied.Load() }

// Close closes the Machine.
func (m *Machine) Close() error {
	m.applyMu.Lock()
	defer m.applyMu.Unlock()
	m.dbMu.Lock()
	defer m.dbMu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	if err := m.db.Close(); err != nil {
		return fmt.Errorf("projections: close: %w", err)
	}
	return nil
}

// Apply applies the command cmd proposed at raftIndex.
//
// It decodes cmd, checks its conditions against the projections, runs its
// operations (validating each event against the state, appending it to the
// log and updating every projection) and records raftIndex as applied, all
// in one Pebble batch committed with pebble.Sync. It is deterministic: it
// reads no clock, draws no randomness and never depends on map order.
//
// A raftIndex <= AppliedIndex() is a no-op (Result.Duplicate). A malformed
// command, a failed condition or an invalid event changes nothing except
// recording raftIndex, and is reported in Result.Err.
func (m *Machine) Apply(raftIndex uint64, cmd []byte) Result {
	m.applyMu.Lock()
	defer m.applyMu.Unlock()
	m.dbMu.RLock()
	defer m.dbMu.RUnlock()
	if m.closed {
		return Result{Err: ErrClosed}
	}
	if raftIndex <= m.applied.Load() {
		return Result{Duplicate: true}
	}

	res, err := m.execute(raftIndex, cmd)
	if err == nil {
		m.applied.Store(raftIndex)
		return res
	}
	if isFatal(err) {
		if !errors.Is(err, ErrStorage) {
			err = fmt.Errorf("%w: %w", ErrStorage, err)
		}
		return Result{Err: err}
	}
	// Rejected: record only the applied index.
	b := m.db.NewBatch()
	defer b.Close()
	if err := b.Set(keyApplied, binary.BigEndian.AppendUint64(nil, raftIndex), nil); err != nil {
		return Result{Err: storageErr("record applied index", err)}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return Result{Err: storageErr("commit applied index", err)}
	}
	m.applied.Store(raftIndex)
	return Result{Err: err}
}

// execute runs cmd in one indexed batch and commits it.
func (m *Machine) execute(raftIndex uint64, data []byte) (Result, error) {
	cmd, err := DecodeCommand(data)
	if err != nil {
		return Result{}, err
	}
	b := m.db.NewIndexedBatch()
	defer b.Close()
	t, err := m.applyTx(b)
	if err != nil {
		return Result{}, err
	}
	res, err := t.run(cmd)
	if err != nil {
		return Result{}, err
	}
	if err := b.Set(keyApplied, binary.BigEndian.AppendUint64(nil, raftIndex), nil); err != nil {
		return Result{}, storageErr("record applied index", err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		// The DB may or may not hold the batch: the cache can no longer
		// be trusted (and the node must stop anyway).
		m.cache = nil
		m.cursors.invalidate()
		m.clients.invalidate()
		return Result{}, storageErr("commit", err)
	}
	t.publish()
	m.cursors.merge(t.cursorWrites)
	if t.clientsChanged {
		m.clients.invalidate()
	}
	return res, nil
}

// applyTx opens the transaction a command runs in: over the committed-value
// cache when there is one, else straight over the batch.
func (m *Machine) applyTx(b *pebble.Batch) (*tx, error) {
	if m.cache != nil {
		return newApplyTx(b, m.cache, &m.enc), nil
	}
	t, err := newTx(b, b)
	if err != nil {
		return nil, err
	}
	t.enc = &m.enc
	return t, nil
}

// run checks a command's conditions and applies its operations to the
// transaction, then finishes it (shared by Apply and ApplyBatch). It does
// not commit or publish.
func (t *tx) run(cmd *Command) (Result, error) {
	var res Result
	for i := range cmd.Conditions {
		if err := t.check(&cmd.Conditions[i]); err != nil {
			return Result{}, fmt.Errorf("projections: condition %d: %w", i, err)
		}
	}
	for i := range cmd.Ops {
		op := &cmd.Ops[i]
		switch {
		case op.Event != nil:
			ev, err := t.append(*op.Event)
			if err != nil {
				return Result{}, fmt.Errorf("projections: op %d (%s): %w", i, op.Event.Type(), err)
			}
			res.Events = append(res.Events, ev)
		case op.Claim != nil:
			cr, ev, err := t.claim(op.Claim)
			if err != nil {
				return Result{}, fmt.Errorf("projections: op %d (claim for %q): %w", i, op.Claim.Client, err)
			}
			if ev != nil {
				res.Events = append(res.Events, *ev)
			}
			res.Claims = append(res.Claims, cr)
		}
	}
	if err := t.finish(); err != nil {
		return Result{}, err
	}
	return res, nil
}

// isFatal reports whether err means this node's state can no longer be
// trusted (as opposed to a deterministic rejection of the command).
func isFatal(err error) bool {
	return errors.Is(err, ErrStorage) || errors.Is(err, ErrCorruptState)
}

// reader returns the DB for a read API, or ErrClosed. The caller holds
// dbMu.RLock.
func (m *Machine) reader() (*pebble.DB, error) {
	if m.closed {
		return nil, ErrClosed
	}
	return m.db, nil
}

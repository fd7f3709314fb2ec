package daemon

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/openmimi/mimi/fanout"
	"github.com/openmimi/mimi/httpapi/transport"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/raftnode"
)

// Metric names exported on /metrics (Prometheus text format).
const (
	MetricRequests          = "mimi_federation_requests_total"
	MetricRequestDuration   = "mimi_federation_request_duration_seconds"
	MetricFanoutBacklog     = "mimi_fanout_backlog"
	MetricFanoutRetries     = "mimi_fanout_retries_total"
	MetricFanoutDelivered   = "mimi_fanout_delivered_messages_total"
	MetricFanoutBatches     = "mimi_fanout_delivered_batches_total"
	MetricFanoutBytes       = "mimi_fanout_delivered_bytes_total"
	MetricRaftState         = "mimi_raft_state"
	MetricRaftTerm          = "mimi_raft_term"
	MetricRaftCommitIndex   = "mimi_raft_commit_index"
	MetricRaftAppliedIndex  = "mimi_raft_applied_index"
	MetricRaftMachineIndex  = "mimi_raft_state_machine_index"
	MetricRaftLastLogIndex  = "mimi_raft_last_log_index"
	MetricRaftSnapshotIndex = "mimi_raft_last_snapshot_index"
	MetricRaftLeaderKnown   = "mimi_raft_leader_known"
	MetricRaftServers       = "mimi_raft_servers"
	MetricApplyDuration     = "mimi_raft_apply_duration_seconds"
	MetricReady             = "mimi_ready"
	MetricStorageFailed     = "mimi_storage_failed"
)

// MetricNames lists every metric the daemon itself defines (the Go
// runtime and process collectors add theirs).
var MetricNames = []string{
	MetricRequests, MetricRequestDuration,
	MetricFanoutBacklog, MetricFanoutRetries, MetricFanoutDelivered, MetricFanoutBatches, MetricFanoutBytes,
	MetricRaftState, MetricRaftTerm, MetricRaftCommitIndex, MetricRaftAppliedIndex, MetricRaftMachineIndex,
	MetricRaftLastLogIndex, MetricRaftSnapshotIndex, MetricRaftLeaderKnown, MetricRaftServers,
	MetricApplyDuration, MetricReady, MetricStorageFailed,
}

// metrics holds the daemon's Prometheus registry and instruments. Each
// Daemon has its own registry, so several can run in one process.
type metrics struct {
	reg *prometheus.Registry

	requests   *prometheus.CounterVec
	reqLatency *prometheus.HistogramVec
	apply      *prometheus.HistogramVec

	backlog                     *prometheus.GaugeVec
	retries                     *prometheus.CounterVec
	delivered, batches, dlBytes *prometheus.CounterVec
}

// newMetrics registers the instruments; status reads the Raft node for
// the gauges computed at scrape time, ready and failed the daemon's
// state.
func newMetrics(status func() raftnode.Status, ready func() bool, failed func() bool) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MetricRequests,
		Help: "Federation requests served (draft-ralston-mimi-protocol-02, Section 5), by endpoint and HTTP status.",
	}, []string{"endpoint", "code"})
	m.reqLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    MetricRequestDuration,
		Help:    "Time to serve a federation request, by endpoint.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
	}, []string{"endpoint"})
	m.apply = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    MetricApplyDuration,
		Help:    "Latency of appending a command through Raft until it is applied, by outcome (applied, rejected, error, refused).",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	}, []string{"outcome"})
	m.backlog = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: MetricFanoutBacklog,
		Help: "Unacknowledged /notify deliveries queued for a destination provider (Section 5.5), as last seen by the fanout worker.",
	}, []string{"destination"})
	m.retries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MetricFanoutRetries,
		Help: "Failed /notify attempts that will be retried, by destination and HTTP status (0: no response).",
	}, []string{"destination", "code"})
	m.delivered = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MetricFanoutDelivered,
		Help: "FanoutMessages delivered (HTTP 201) and acknowledged, by destination.",
	}, []string{"destination"})
	m.batches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MetricFanoutBatches,
		Help: "/notify bodies delivered (HTTP 201) and acknowledged, by destination.",
	}, []string{"destination"})
	m.dlBytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MetricFanoutBytes,
		Help: "Bytes of /notify bodies delivered and acknowledged, by destination.",
	}, []string{"destination"})
	m.reg.MustRegister(m.requests, m.reqLatency, m.apply, m.backlog, m.retries, m.delivered, m.batches, m.dlBytes,
		&raftCollector{status: status, ready: ready, failed: failed},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// handler serves the registry.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// observeApply records one Raft append.
func (m *metrics) observeApply(outcome string, d time.Duration) {
	m.apply.WithLabelValues(outcome).Observe(d.Seconds())
}

// fanout returns the fanout engine's Metrics callbacks.
func (m *metrics) fanout() fanout.Metrics {
	return fanout.MetricsFuncs{
		OnDelivered: func(dest string, messages, bodyBytes int) {
			m.delivered.WithLabelValues(dest).Add(float64(messages))
			m.batches.WithLabelValues(dest).Inc()
			m.dlBytes.WithLabelValues(dest).Add(float64(bodyBytes))
		},
		OnRetry: func(dest string, status int, _ error, _ time.Duration) {
			m.retries.WithLabelValues(dest, strconv.Itoa(status)).Inc()
		},
		OnBacklog: func(dest string, backlog uint64) {
			m.backlog.WithLabelValues(dest).Set(float64(backlog))
		},
	}
}

// instrument wraps the federation handler with the request counter and
// latency histogram.
func (m *metrics) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ep := endpointLabel(r.URL.Path)
		sw := &statusWriter{ResponseWriter: w}
		start := time.Now()
		defer func() {
			code := sw.status
			if code == 0 {
				code = http.StatusOK // nothing written: net/http sends 200
			}
			m.requests.WithLabelValues(ep, strconv.Itoa(code)).Inc()
			m.reqLatency.WithLabelValues(ep).Observe(time.Since(start).Seconds())
		}()
		next.ServeHTTP(sw, r)
	})
}

// endpointLabel maps a request path to a bounded label: the directory,
// one of the endpoints of the default directory, or "other".
func endpointLabel(path string) string {
	if path == mimi.WellKnownDirectory {
		return "directory"
	}
	for _, ep := range transport.Endpoints {
		if strings.HasPrefix(path, ep.Path()) {
			return string(ep)
		}
	}
	return "other"
}

// statusWriter records the final status of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// raftCollector turns one raftnode.Status per scrape into gauges.
type raftCollector struct {
	status        func() raftnode.Status
	ready, failed func() bool
}

var (
	descState       = prometheus.NewDesc(MetricRaftState, "1 for the Raft state this node is in (Follower, Candidate, Leader, Shutdown).", []string{"state"}, nil)
	descTerm        = prometheus.NewDesc(MetricRaftTerm, "Current Raft term.", nil, nil)
	descCommit      = prometheus.NewDesc(MetricRaftCommitIndex, "Highest Raft log index known committed.", nil, nil)
	descApplied     = prometheus.NewDesc(MetricRaftAppliedIndex, "Highest Raft log index dispatched for application.", nil, nil)
	descMachine     = prometheus.NewDesc(MetricRaftMachineIndex, "Highest command index applied to the state machine.", nil, nil)
	descLastLog     = prometheus.NewDesc(MetricRaftLastLogIndex, "Last index in the local Raft log.", nil, nil)
	descSnapshot    = prometheus.NewDesc(MetricRaftSnapshotIndex, "Index of the latest Raft snapshot.", nil, nil)
	descLeaderKnown = prometheus.NewDesc(MetricRaftLeaderKnown, "1 if this node knows a leader.", nil, nil)
	descServers     = prometheus.NewDesc(MetricRaftServers, "Servers in the Raft configuration, by suffrage.", []string{"suffrage"}, nil)
	descReady       = prometheus.NewDesc(MetricReady, "1 if /readyz reports ready.", nil, nil)
	descFailed      = prometheus.NewDesc(MetricStorageFailed, "1 if the state machine reported a storage failure and the node stopped applying commands.", nil, nil)
)

var raftStates = []string{"Follower", "Candidate", "Leader", "Shutdown"}

// Describe implements prometheus.Collector.
func (c *raftCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descState, descTerm, descCommit, descApplied, descMachine, descLastLog, descSnapshot, descLeaderKnown, descServers, descReady, descFailed} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *raftCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.status()
	for _, s := range raftStates {
		ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, b2f(st.State == s), s)
	}
	gauge := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	gauge(descTerm, st.Term)
	gauge(descCommit, st.CommitIndex)
	gauge(descApplied, st.AppliedIndex)
	gauge(descMachine, st.StateMachineIndex)
	gauge(descLastLog, st.LastLogIndex)
	gauge(descSnapshot, st.LastSnapshotIndex)
	ch <- prometheus.MustNewConstMetric(descLeaderKnown, prometheus.GaugeValue, b2f(st.LeaderID != ""))
	counts := map[string]int{"Voter": 0, "Nonvoter": 0, "Staging": 0}
	for _, s := range st.Servers {
		counts[s.Suffrage]++
	}
	for k, v := range counts {
		ch <- prometheus.MustNewConstMetric(descServers, prometheus.GaugeValue, float64(v), k)
	}
	ch <- prometheus.MustNewConstMetric(descReady, prometheus.GaugeValue, b2f(c.ready()))
	ch <- prometheus.MustNewConstMetric(descFailed, prometheus.GaugeValue, b2f(c.failed()))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

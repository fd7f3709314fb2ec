package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// BaselineResult is the bare mutual-TLS HTTP/2 echo measurement: the
// median of Rounds by throughput (the machine is shared, and one round of
// a few thousand requests lasts well under a second).
type BaselineResult struct {
	Rounds     []BaselineRound `json:"rounds"`
	Requests   int             `json:"requests"`
	Proto      string          `json:"proto"`
	Seconds    float64         `json:"seconds"`
	PerSec     float64         `json:"requests_per_sec"`
	Latency    Latency         `json:"latency"`
	CPUSeconds float64         `json:"cpu_seconds"`
	CPUPerReqM float64         `json:"cpu_per_request_ms"`
}

// BaselineRound is one round of the baseline.
type BaselineRound struct {
	PerSec     float64 `json:"requests_per_sec"`
	P50        float64 `json:"p50_ms"`
	P99        float64 `json:"p99_ms"`
	CPUPerReqM float64 `json:"cpu_per_request_ms"`
}

// runBaseline serves a POST echo with crypto/tls and net/http on loopback,
// with the hub's certificate, requiring a client certificate of the same
// CA (TLS 1.3, HTTP/2, as the federation transport of
// draft-ralston-mimi-protocol-02, Section 4.1), and POSTs requests bodies
// of size bytes from concurrency goroutines presenting the sender
// provider's certificate over one client.
func runBaseline(ctx context.Context, f *fabric, requests, concurrency, size, warmup, rounds int) (*BaselineResult, error) {
	hub, snd := f.nodes[hubDomain], f.nodes[cDomain]
	srvCert, err := tls.LoadX509KeyPair(hub.certFile, hub.keyFile)
	if err != nil {
		return nil, err
	}
	cliCert, err := tls.LoadX509KeyPair(snd.certFile, snd.keyFile)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost {
				http.Error(w, "POST only", http.StatusMethodNotAllowed)
				return
			}
			b, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Write(b)
		}),
		TLSConfig:         f.serverTLS(srvCert),
		ReadHeaderTimeout: 10 * time.Second,
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.ServeTLS(ln, "", "") }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		<-serveErr
	}()

	tr := f.clientTransport(cliCert, hubDomain)
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	url := "https://" + ln.Addr().String() + "/echo"
	body := makePayload(0, 0, 0, size)

	post := func() (string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return "", err
		}
		req.Header.Set("Content-Type", "application/octet-stream")
		resp, err := hc.Do(req)
		if err != nil {
			return "", err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return "", err
		}
		if resp.StatusCode != http.StatusOK || !bytes.Equal(b, body) {
			return "", fmt.Errorf("echo: status %d, %d bytes", resp.StatusCode, len(b))
		}
		if resp.ProtoMajor != 2 {
			return "", fmt.Errorf("echo: %s, want HTTP/2", resp.Proto)
		}
		return resp.Proto, nil
	}
	var proto string
	for range max(warmup, 1) {
		if proto, err = post(); err != nil {
			return nil, fmt.Errorf("baseline warmup: %w", err)
		}
	}

	var results []*BaselineResult
	for range max(rounds, 1) {
		res, err := baselineRound(requests, concurrency, post)
		if err != nil {
			return nil, err
		}
		res.Proto = proto
		results = append(results, res)
	}
	sorted := slices.Clone(results)
	slices.SortFunc(sorted, func(a, b *BaselineResult) int { return cmp.Compare(a.PerSec, b.PerSec) })
	res := sorted[len(sorted)/2]
	for _, r := range results {
		res.Rounds = append(res.Rounds, BaselineRound{PerSec: round3(r.PerSec), P50: r.Latency.P50, P99: r.Latency.P99, CPUPerReqM: round3(r.CPUPerReqM)})
	}
	return res, nil
}

// serverTLS is the TLS configuration of the baseline's and the floor's
// servers: TLS 1.3, HTTP/2, a client certificate of the fabric's CA
// required.
func (f *fabric) serverTLS(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    f.ca.Pool(),
		MinVersion:   tls.VersionTLS13,
		NextProtos:   []string{"h2", "http/1.1"},
	}
}

// clientTransport is an HTTP/2 client transport presenting cert to the
// server named to.
func (f *fabric) clientTransport(cert tls.Certificate, to string) *http.Transport {
	return &http.Transport{
		TLSClientConfig: &tls.Config{
			Certificates: []tls.Certificate{cert},
			RootCAs:      f.ca.Pool(),
			ServerName:   to,
			MinVersion:   tls.VersionTLS13,
		},
		ForceAttemptHTTP2: true,
	}
}

// baselineRound runs requests POSTs from concurrency goroutines.
func baselineRound(requests, concurrency int, post func() (string, error)) (*BaselineResult, error) {
	lat := make([][]time.Duration, concurrency)
	errs := make([]error, concurrency)
	var wg sync.WaitGroup
	cpu0 := cpuTime()
	start := time.Now()
	for w := range concurrency {
		share := requests / concurrency
		if w < requests%concurrency {
			share++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range share {
				t0 := time.Now()
				if _, err := post(); err != nil {
					errs[w] = err
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	res := &BaselineResult{
		Requests: len(all), Seconds: elapsed.Seconds(),
		PerSec: float64(len(all)) / elapsed.Seconds(), Latency: summarize(all),
		CPUSeconds: cpu.Seconds(),
	}
	if len(all) > 0 {
		res.CPUPerReqM = cpu.Seconds() * 1e3 / float64(len(all))
	}
	return res, nil
}

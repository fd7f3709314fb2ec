package main

import (
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// promSample is one sample of the Prometheus text exposition format.
type promSample struct {
	name   string
	labels map[string]string
	value  float64
}

// promText is a parsed /metrics page.
type promText []promSample

// parseProm parses the subset of the Prometheus text format the daemon
// emits: comment lines, and `name{k="v",...} value` or `name value`.
// Unparsable lines are skipped (the page comes from our own process).
func parseProm(text string) promText {
	var out promText
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		s := promSample{labels: map[string]string{}}
		rest := line
		if i := strings.IndexByte(line, '{'); i >= 0 {
			j := strings.LastIndexByte(line, '}')
			if j < i {
				continue
			}
			s.name = line[:i]
			parseLabels(line[i+1:j], s.labels)
			rest = strings.TrimSpace(line[j+1:])
		} else {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			s.name, rest = f[0], f[1]
		}
		if f := strings.Fields(rest); len(f) > 0 {
			v, err := strconv.ParseFloat(f[0], 64)
			if err != nil {
				continue
			}
			s.value = v
			out = append(out, s)
		}
	}
	return out
}

func parseLabels(s string, into map[string]string) {
	for len(s) > 0 {
		eq := strings.IndexByte(s, '=')
		if eq < 0 || eq+1 >= len(s) || s[eq+1] != '"' {
			return
		}
		key := strings.TrimSpace(s[:eq])
		s = s[eq+2:]
		var val strings.Builder
		i := 0
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' && i+1 < len(s) {
				i++
			}
			val.WriteByte(s[i])
		}
		into[key] = val.String()
		if i+1 >= len(s) {
			return
		}
		s = strings.TrimLeft(s[i+1:], ", ")
	}
}

// sum adds up the samples named name whose labels include every pair of
// match.
func (p promText) sum(name string, match map[string]string) float64 {
	var t float64
	for _, s := range p {
		if s.name != name {
			continue
		}
		ok := true
		for k, v := range match {
			if s.labels[k] != v {
				ok = false
				break
			}
		}
		if ok {
			t += s.value
		}
	}
	return t
}

// labelValues lists the values label takes on samples named name.
func (p promText) labelValues(name, label string) []string {
	seen := map[string]bool{}
	for _, s := range p {
		if s.name == name {
			if v, ok := s.labels[label]; ok {
				seen[v] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// Latency is a latency distribution summary, in milliseconds.
type Latency struct {
	Count int     `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

// summarize sorts ds and summarizes it (nearest-rank percentiles).
func summarize(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	var total time.Duration
	for _, d := range ds {
		total += d
	}
	rank := func(q float64) time.Duration {
		i := int(math.Ceil(q*float64(len(ds)))) - 1
		i = max(0, min(i, len(ds)-1))
		return ds[i]
	}
	return Latency{
		Count: len(ds),
		Mean:  ms(total / time.Duration(len(ds))),
		P50:   ms(rank(0.50)),
		P99:   ms(rank(0.99)),
		Max:   ms(ds[len(ds)-1]),
	}
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

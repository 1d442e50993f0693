package main

import (
	"fmt"
	"strings"
	"time"
)

// peerInfo is one peer as the report names it.
type peerInfo struct {
	Name    string
	Version string
	Present bool
}

// peerInfos lists every peer in column order, with its version when found.
func peerInfos(found map[string]peer) []peerInfo {
	var out []peerInfo
	for _, n := range peerNames() {
		p, ok := found[n]
		out = append(out, peerInfo{Name: n, Version: p.version, Present: ok})
	}
	return out
}

// peerLine names the peers and their versions, and those absent.
func (r report) peerLine() string {
	var have, absent []string
	for _, p := range r.Peers {
		if p.Present {
			have = append(have, p.Name+" "+p.Version)
		} else {
			absent = append(absent, p.Name)
		}
	}
	line := "Peers: " + orNone(strings.Join(have, ", "))
	if len(absent) > 0 {
		line += "; absent (not installed, no figures): " + strings.Join(absent, ", ")
	}
	return line
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// fastestPeer returns the quickest peer that succeeded on x, if any.
func (x row) fastestPeer() (peerResult, bool) {
	var best peerResult
	found := false
	for _, p := range x.Peers {
		if p.Status == "" && (!found || p.Wall < best.Wall) {
			best, found = p, true
		}
	}
	return best, found
}

// ratio is docker-imgx's wall time over the fastest peer's, written
// "0.92× crane" (below 1: docker-imgx is faster); "–" without both figures.
func (x row) ratio() string {
	best, ok := x.fastestPeer()
	if !ok || x.Status != "" || best.Wall <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f× %s", float64(x.Wall)/float64(best.Wall), best.label())
}

// label names the peer's command: the peer, then its variant (crane-p4).
func (p peerResult) label() string { return p.Peer + p.Variant }

// peerTable renders each row that has peers: docker-imgx's wall time,
// requests and peak RSS beside each peer's, and the ratio to the fastest.
func (r report) peerTable() string {
	var b strings.Builder
	for _, x := range r.Rows {
		if len(x.Peers) == 0 {
			continue
		}
		if b.Len() == 0 {
			b.WriteString("| Case | Latency | docker-imgx | " + strings.Join(peerNames(), " | ") + " | docker-imgx ÷ fastest peer |\n")
			b.WriteString("|---|---:|---:|" + strings.Repeat("---:|", len(peerNames())) + "---:|\n")
		}
		cells := []string{x.Case, x.link(), figures(x.Status, x.Wall, x.Requests, x.RSSKiB)}
		for _, name := range peerNames() {
			// A peer's variants share its cell, each after its label.
			var parts []string
			for _, p := range x.Peers {
				if p.Peer != name {
					continue
				}
				part := figures(p.Status, p.Wall, p.Requests, p.RSSKiB)
				if p.Status == "" && p.Flush > 0 {
					part += " · +" + formatDuration(p.Flush) + " flush"
				}
				if p.Variant != "" {
					part = p.label() + ": " + part
				}
				parts = append(parts, part)
			}
			cell := "–"
			if len(parts) > 0 {
				cell = strings.Join(parts, "<br>")
			}
			cells = append(cells, cell)
		}
		cells = append(cells, x.ratio())
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	return b.String()
}

// figures writes one tool's cell: "1.23 s · 12 req · 24.5 MiB", or its status.
func figures(status string, wall time.Duration, requests int, rssKiB int64) string {
	if status != "" {
		return shorten(status, 60)
	}
	return fmt.Sprintf("%s · %d req · %s", formatDuration(wall), requests, formatSize(rssKiB<<10))
}

func shorten(s string, n int) string {
	s = strings.ReplaceAll(s, "|", "/")
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

// commandList says which command each row ran: per case, docker-imgx's
// command line and each peer's, hosts written A (source registry) and B
// (second registry), the output path OUT and the per-run name TOKEN.
func (r report) commandList() string {
	var b strings.Builder
	seen := map[string]bool{}
	for _, x := range r.Rows {
		if len(x.Peers) == 0 || seen[x.Case] {
			continue
		}
		seen[x.Case] = true
		fmt.Fprintf(&b, "- %s\n  - `%s`\n", x.Case, x.CommandLine)
		for _, p := range x.Peers {
			fmt.Fprintf(&b, "  - `%s`\n", p.Command)
		}
	}
	return b.String()
}

// summary is the sentences the README points to: how docker-imgx compared
// with the peers at the largest latency without a rate limit, then without
// latency, where the machine's disk and cores are the limit.
func (r report) summary() string {
	var lat time.Duration
	lowest := time.Duration(-1)
	for _, x := range r.Rows {
		if x.Rate == 0 {
			lat = max(lat, x.Latency)
			if lowest < 0 || x.Latency < lowest {
				lowest = x.Latency
			}
		}
	}
	top := r.standing(lat)
	if top.jobs == 0 {
		return "No case ran beside a peer in this run.\n"
	}
	s := fmt.Sprintf("At %s per request, docker-imgx finished first on %d of the %d jobs it shares with %s", formatDuration(lat), top.fastest, top.jobs, r.peerNamesPresent())
	s += top.gap() + ".\n"
	if lowest >= 0 && lowest != lat {
		if low := r.standing(lowest); low.jobs > 0 {
			s += fmt.Sprintf("At %s, where the machine's disk and cores are the limit, it finished first on %d of %d", formatDuration(lowest), low.fastest, low.jobs)
			s += low.gap() + ".\n"
		}
	}
	return s + fmt.Sprintf("Its peak memory was at most %s in the jobs at %s, against up to %s for the peers.\n",
		formatSize(top.imgxRSS<<10), formatDuration(lat), formatSize(top.peerRSS<<10))
}

// standing is how docker-imgx did against the fastest peer over the jobs
// at one latency (no rate limit).
type standing struct {
	jobs, fastest    int
	worst            float64
	worstCase        string
	imgxRSS, peerRSS int64
}

func (r report) standing(lat time.Duration) standing {
	var st standing
	for _, x := range r.Rows {
		best, ok := x.fastestPeer()
		if x.Rate != 0 || x.Latency != lat || !ok || x.Status != "" {
			continue
		}
		st.jobs++
		q := float64(x.Wall) / float64(best.Wall)
		if q <= 1 {
			st.fastest++
		} else if q > st.worst {
			st.worst, st.worstCase = q, fmt.Sprintf("%s, where %s took %s against %s", x.Case, best.label(), formatDuration(best.Wall), formatDuration(x.Wall))
		}
		st.imgxRSS = max(st.imgxRSS, x.RSSKiB)
		for _, p := range x.Peers {
			if p.Status == "" {
				st.peerRSS = max(st.peerRSS, p.RSSKiB)
			}
		}
	}
	return st
}

// gap is the clause on the largest gap, "" when docker-imgx was first on
// every job.
func (st standing) gap() string {
	if st.worstCase == "" {
		return ""
	}
	return fmt.Sprintf("; its largest gap was %.2f× on %s", st.worst, st.worstCase)
}

// peerNamesPresent lists the installed peers as prose.
func (r report) peerNamesPresent() string {
	var names []string
	for _, p := range r.Peers {
		if p.Present {
			names = append(names, p.Name)
		}
	}
	switch len(names) {
	case 0:
		return "no peer"
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

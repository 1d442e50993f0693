package main

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// Chart geometry, in SVG user units.
const (
	chartWidth  = 960
	labelWidth  = 400
	plotWidth   = 440
	headerH     = 56
	barH        = 12
	footerH     = 28
	chartFont   = "font-family=\"sans-serif\" font-size=\"11\""
	caseColor   = "#2f6db5"
	baseColor   = "#b0b7c0"
	missingText = "#8a5a00"
)

// peerColors are the peers' bar colors, in peerNames order.
var peerColors = map[string]string{
	peerCrane: "#e08a2c", peerRegctl: "#4f9d55", peerSkopeo: "#b5484a", peerOras: "#8e6bb8", peerBuildx: "#3a9fb0",
}

// chartBar is one bar of a row: a tool's throughput, or a note instead.
type chartBar struct {
	value float64
	color string
	note  string
}

// bars are a row's bars: docker-imgx, each peer that ran, then the baseline.
func (x row) bars() []chartBar {
	out := []chartBar{{value: rate(x.Content, x.Wall), color: caseColor, note: x.Status}}
	for _, p := range x.Peers {
		if p.Status == "" {
			out = append(out, chartBar{value: rate(x.Content, p.Wall), color: peerColors[p.Peer]})
		}
	}
	return append(out, chartBar{value: rate(x.Content, x.Baseline), color: baseColor})
}

// chart draws each row's throughput, its peers' and its baseline's as
// horizontal bars on a logarithmic MiB/s axis, so a create that copies
// nothing and an export limited by the link fit on one scale.
func (r report) chart() []byte {
	lo, hi := r.decades()
	plotH := 0
	for _, x := range r.Rows {
		plotH += rowHeight(x)
	}
	height := headerH + plotH + footerH
	var b strings.Builder
	fmt.Fprintf(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" %s>\n",
		chartWidth, height, chartWidth, height, chartFont)
	fmt.Fprintf(&b, "<rect width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", chartWidth, height)
	fmt.Fprintf(&b, "<text x=\"8\" y=\"18\" font-size=\"14\" font-weight=\"bold\">Throughput (MiB/s, log scale): docker-imgx, the tools users know, and the download-and-hash baseline</text>\n")
	legendX := 8
	legend := func(color, label string) {
		fmt.Fprintf(&b, "<rect x=\"%d\" y=\"28\" width=\"12\" height=\"10\" fill=\"%s\"/><text x=\"%d\" y=\"37\">%s</text>\n", legendX, color, legendX+16, label)
		legendX += 24 + 7*len(label)
	}
	legend(caseColor, "docker-imgx")
	for _, p := range r.chartPeers() {
		legend(peerColors[p], p)
	}
	legend(baseColor, "baseline: parallel download + sha256")
	plotTop, plotBottom := headerH, headerH+plotH
	for d := lo; d <= hi; d++ {
		x := labelWidth + float64(plotWidth)*float64(d-lo)/float64(hi-lo)
		fmt.Fprintf(&b, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#e3e6ea\"/>\n", x, plotTop, x, plotBottom)
		fmt.Fprintf(&b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", x, plotBottom+16, decadeLabel(d))
	}
	y := headerH
	for _, x := range r.Rows {
		h := rowHeight(x)
		label := fmt.Sprintf("%s, %s", x.Case, x.link())
		fmt.Fprintf(&b, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>\n", labelWidth-8, y+h/2+4, html.EscapeString(label))
		for i, bar := range x.bars() {
			by := y + 4 + i*(barH+2)
			if bar.note != "" {
				fmt.Fprintf(&b, "<text x=\"%d\" y=\"%d\" fill=\"%s\">%s</text>\n", labelWidth+4, by+barH-2, missingText, html.EscapeString(bar.note))
				continue
			}
			r.bar(&b, by, bar.value, bar.color, lo, hi)
		}
		y += h
	}
	b.WriteString("</svg>\n")
	return []byte(b.String())
}

// rowHeight fits a row's bars with a gap below.
func rowHeight(x row) int { return 8 + len(x.bars())*(barH+2) }

// chartPeers are the peers with a bar somewhere in the chart, in column order.
func (r report) chartPeers() []string {
	seen := map[string]bool{}
	for _, x := range r.Rows {
		for _, p := range x.Peers {
			if p.Status == "" {
				seen[p.Peer] = true
			}
		}
	}
	var out []string
	for _, p := range peerNames() {
		if seen[p] {
			out = append(out, p)
		}
	}
	return out
}

// bar draws one bar from the left edge of the plot to v on the log axis, with
// its value written after it.
func (r report) bar(b *strings.Builder, y int, v float64, color string, lo, hi int) {
	w := 0.0
	if v > 0 {
		w = float64(plotWidth) * (math.Log10(v) - float64(lo)) / float64(hi-lo)
	}
	w = math.Max(w, 1)
	fmt.Fprintf(b, "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"/>\n", labelWidth, y, w, barH, color)
	fmt.Fprintf(b, "<text x=\"%.1f\" y=\"%d\">%s</text>\n", float64(labelWidth)+w+4, y+barH-2, formatMiBps(v))
}

// decades returns the powers of ten that bound every rate in the report,
// at least one decade apart.
func (r report) decades() (lo, hi int) {
	lo, hi = math.MaxInt, math.MinInt
	see := func(v float64) {
		if v <= 0 {
			return
		}
		lo = min(lo, int(math.Floor(math.Log10(v))))
		hi = max(hi, int(math.Ceil(math.Log10(v))))
	}
	for _, x := range r.Rows {
		for _, bar := range x.bars() {
			if bar.note == "" {
				see(bar.value)
			}
		}
	}
	if lo == math.MaxInt {
		return 0, 1
	}
	if hi <= lo {
		hi = lo + 1
	}
	return lo, hi
}

func decadeLabel(d int) string {
	if d >= 0 {
		return fmt.Sprintf("%.0f", math.Pow(10, float64(d)))
	}
	return fmt.Sprintf("%g", math.Pow(10, float64(d)))
}

func formatMiBps(v float64) string {
	if v < 1 {
		return fmt.Sprintf("%.2f MiB/s", v)
	}
	if v < 10 {
		return fmt.Sprintf("%.1f MiB/s", v)
	}
	return fmt.Sprintf("%.0f MiB/s", v)
}

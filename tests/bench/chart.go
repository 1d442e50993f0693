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
	rowH        = 34
	barH        = 12
	footerH     = 28
	chartFont   = "font-family=\"sans-serif\" font-size=\"11\""
	caseColor   = "#2f6db5"
	baseColor   = "#b0b7c0"
	missingText = "#8a5a00"
)

// chart draws each row's throughput beside its baseline as horizontal bars on
// a logarithmic MiB/s axis, so a create that copies nothing and an export
// limited by the link fit on one scale.
func (r report) chart() []byte {
	lo, hi := r.decades()
	height := headerH + rowH*len(r.Rows) + footerH
	var b strings.Builder
	fmt.Fprintf(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" %s>\n",
		chartWidth, height, chartWidth, height, chartFont)
	fmt.Fprintf(&b, "<rect width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", chartWidth, height)
	fmt.Fprintf(&b, "<text x=\"8\" y=\"18\" font-size=\"14\" font-weight=\"bold\">docker-imgx: throughput (MiB/s, log scale) beside the download-and-hash baseline</text>\n")
	fmt.Fprintf(&b, "<rect x=\"8\" y=\"28\" width=\"12\" height=\"10\" fill=\"%s\"/><text x=\"24\" y=\"37\">docker-imgx (content / median wall time)</text>\n", caseColor)
	fmt.Fprintf(&b, "<rect x=\"260\" y=\"28\" width=\"12\" height=\"10\" fill=\"%s\"/><text x=\"276\" y=\"37\">baseline: parallel download + sha256 of the same blobs</text>\n", baseColor)
	plotTop, plotBottom := headerH, headerH+rowH*len(r.Rows)
	for d := lo; d <= hi; d++ {
		x := labelWidth + float64(plotWidth)*float64(d-lo)/float64(hi-lo)
		fmt.Fprintf(&b, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#e3e6ea\"/>\n", x, plotTop, x, plotBottom)
		fmt.Fprintf(&b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", x, plotBottom+16, decadeLabel(d))
	}
	for i, x := range r.Rows {
		y := headerH + rowH*i
		label := fmt.Sprintf("%s, %s", x.Case, x.link())
		fmt.Fprintf(&b, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>\n", labelWidth-8, y+rowH/2+4, html.EscapeString(label))
		if x.Status != "" {
			fmt.Fprintf(&b, "<text x=\"%d\" y=\"%d\" fill=\"%s\">%s</text>\n", labelWidth+4, y+4+barH-2, missingText, html.EscapeString(x.Status))
		} else {
			r.bar(&b, y+4, rate(x.Content, x.Wall), caseColor, lo, hi)
		}
		r.bar(&b, y+4+barH+2, rate(x.Content, x.Baseline), baseColor, lo, hi)
	}
	b.WriteString("</svg>\n")
	return []byte(b.String())
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
		see(rate(x.Content, x.Baseline))
		if x.Status == "" {
			see(rate(x.Content, x.Wall))
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

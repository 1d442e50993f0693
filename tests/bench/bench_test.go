package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"256MiB": 256 << 20, "1GiB": 1 << 30, "4KiB": 4096, "100": 100, "7B": 7} {
		got, err := parseSize(in)
		if err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0MiB", "-1GiB", "1.5GiB", "12TB", "MiB"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q): no error", in)
		}
	}
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]int64{"1Gbit": 125_000_000, "500Mbit": 62_500_000, "0": 0} {
		if got, err := parseRate(in); err != nil || got != want {
			t.Errorf("parseRate(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"1G", "-1Gbit", "1.5Gbit", "Gbit", "fast"} {
		if _, err := parseRate(bad); err == nil {
			t.Errorf("parseRate(%q) accepted", bad)
		}
	}
	if got := formatRate8(125_000_000); got != "1 Gbit/s" {
		t.Errorf("formatRate8 = %q, want 1 Gbit/s", got)
	}
}

func TestParseLatencies(t *testing.T) {
	got, err := parseLatencies("0, 20ms,1s")
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{0, 20 * time.Millisecond, time.Second}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("parseLatencies = %v, want %v", got, want)
	}
	for _, in := range []string{"20", "-5ms", "x"} {
		if _, err := parseLatencies(in); err == nil {
			t.Errorf("parseLatencies(%q): no error", in)
		}
	}
}

func TestParseCommands(t *testing.T) {
	help := `Usage:  docker-imgx [OPTIONS] COMMAND

Available Commands:
  create      Combine images into a multi-platform index
  inspect     Show an image
  version     Show the version

Flags:
  -D, --debug   Enable debug logging
`
	got := parseCommands([]byte(help))
	for _, c := range []string{"create", "inspect", "version"} {
		if !got[c] {
			t.Errorf("command %q not found in %v", c, got)
		}
	}
	if got["export"] || got["-D,"] || len(got) != 3 {
		t.Errorf("parseCommands = %v, want create, inspect, version", got)
	}
}

func TestMedian(t *testing.T) {
	if got := median([]int{5, 1, 3}); got != 3 {
		t.Errorf("median of 5 1 3 = %d", got)
	}
	if got := median([]time.Duration{4, 1, 3, 2}); got != 2 {
		t.Errorf("median of 4 1 3 2 = %d, want the lower middle 2", got)
	}
	in := []int{3, 1, 2}
	median(in)
	if in[0] != 3 {
		t.Error("median sorted its input")
	}
}

func sampleReport() report {
	return report{Runs: 3, Rows: []row{
		{Case: "export <big> & co", Command: "export", Latency: 20 * time.Millisecond, Content: 256 << 20,
			Wall: 2 * time.Second, Baseline: time.Second, WriteBaseline: 1600 * time.Millisecond, Requests: 12,
			Bytes: 257 << 20, RSSKiB: 40 << 10, RoundTrips: 4, FloorRoundTrips: 2},
		{Case: "export <big> & co", Command: "export", Content: 256 << 20,
			Wall: 1900 * time.Millisecond, Baseline: time.Second, Requests: 12, Bytes: 257 << 20, RSSKiB: 40 << 10},
		{Case: "create 2 images, same repository", Command: "create", Content: 16 << 20,
			Status: "n/a (command missing)", Baseline: 100 * time.Millisecond, CopyBaseline: 200 * time.Millisecond},
		{Case: "inspect", Command: "inspect", Content: 40 << 10, Wall: 300 * time.Millisecond, Baseline: 200 * time.Millisecond},
	}}
}

func TestTable(t *testing.T) {
	table := sampleReport().table()
	lines := strings.Split(strings.TrimSuffix(table, "\n"), "\n")
	if len(lines) != 2+4 {
		t.Fatalf("table has %d lines, want header, rule and 4 rows:\n%s", len(lines), table)
	}
	for i, l := range lines {
		if n := strings.Count(l, "|"); n != 12 {
			t.Errorf("line %d has %d cells separators, want 12: %s", i, n, l)
		}
	}
	want := "| export <big> & co | 20 ms | 256.0 MiB | 2.00 s | 1.00 s | 128 MiB/s | 256 MiB/s | write 1.60 s, 160 MiB/s | 12 | 257.0 MiB | 40.0 MiB |"
	if lines[2] != want {
		t.Errorf("row:\n got %s\nwant %s", lines[2], want)
	}
	if !strings.Contains(lines[4], "| n/a (command missing) | 100 ms | – | 160 MiB/s | copy 200 ms, 80 MiB/s | – | – | – |") {
		t.Errorf("missing command row: %s", lines[4])
	}
}

// TestRoundTripTable: one row per case measured with latency, the time
// latency added taken against the same case without it, and that time in
// round trips (100 ms at 20 ms: 5.0).
func TestRoundTripTable(t *testing.T) {
	got := sampleReport().roundTripTable()
	want := "| Case | Latency | Requests | Round trips | Floor | Wall time | Added by latency | Round trips × latency | Round trips paid |\n" +
		"|---|---:|---:|---:|---:|---:|---:|---:|---:|\n" +
		"| export <big> & co | 20 ms | 12 | 4 | 2 | 2.00 s | 100 ms | 80 ms | 5.0 |\n"
	if got != want {
		t.Errorf("round-trip table:\n%s\nwant:\n%s", got, want)
	}
}

// TestChartIsWellFormed parses the SVG and counts its bars: two per measured
// row, one for a row without figures.
func TestChartIsWellFormed(t *testing.T) {
	svg := sampleReport().chart()
	dec := xml.NewDecoder(bytes.NewReader(svg))
	rects, texts := 0, []string{}
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("chart is not well-formed XML: %v\n%s", err, svg)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			if el.Name.Local == "rect" {
				rects++
			}
		case xml.CharData:
			texts = append(texts, string(el))
		}
	}
	// Background, two legend swatches, then the bars.
	if want := 3 + 2 + 2 + 1 + 2; rects != want {
		t.Errorf("chart has %d rects, want %d", rects, want)
	}
	all := strings.Join(texts, "\n")
	for _, s := range []string{"export <big> & co, 20 ms", "n/a (command missing)", "128 MiB/s", "256 MiB/s"} {
		if !strings.Contains(all, s) {
			t.Errorf("chart text lacks %q", s)
		}
	}
}

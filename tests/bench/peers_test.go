package main

import (
	"context"
	"debug/buildinfo"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"
)

func peerReport() report {
	r := report{Peers: []peerInfo{{Name: peerCrane, Version: "v0.22.1", Present: true}, {Name: peerRegctl, Version: "v0.11.7", Present: true},
		{Name: peerSkopeo}, {Name: peerOras, Present: true, Version: "v1.3.6"}, {Name: peerBuildx}}}
	r.Rows = []row{
		{Case: "copy index", Latency: 20 * time.Millisecond, Wall: 900 * time.Millisecond, Requests: 40, RSSKiB: 20 << 10,
			CommandLine: "docker-imgx create -t B/x A/y", Peers: []peerResult{
				{Peer: peerCrane, Wall: time.Second, Requests: 50, RSSKiB: 15 << 10, Command: "crane copy A/y B/x"},
				{Peer: peerRegctl, Wall: 800 * time.Millisecond, Requests: 45, RSSKiB: 30 << 10, Command: "regctl image copy A/y B/x"},
				{Peer: peerSkopeo, Status: "absent", Command: "skopeo copy --all docker://A/y docker://B/x"},
			}},
		{Case: "export", Latency: 20 * time.Millisecond, Wall: 2 * time.Second, Requests: 10, RSSKiB: 25 << 10,
			CommandLine: "docker-imgx export -o OUT A/z", Peers: []peerResult{
				{Peer: peerCrane, Wall: 4 * time.Second, Requests: 12, RSSKiB: 12 << 10, Command: "crane pull A/z OUT", Flush: 300 * time.Millisecond},
				{Peer: peerOras, Status: "error: oras: exit 1: boom | bang"},
			}},
		// Without latency and without peers: in neither the summary nor the peer table.
		{Case: "export", Wall: time.Second, Requests: 10, RSSKiB: 25 << 10},
		{Case: "scale: create 100 children", Units: 100, Unit: "child", Wall: 2 * time.Second, Requests: 900, RSSKiB: 70 << 10},
	}
	return r
}

func TestPeerTable(t *testing.T) {
	got := peerReport().peerTable()
	want := "| Case | Latency | docker-imgx | crane | regctl | skopeo | oras | buildx | docker-imgx ÷ fastest peer |\n" +
		"|---|---:|---:|---:|---:|---:|---:|---:|---:|\n" +
		"| copy index | 20 ms | 900 ms · 40 req · 20.0 MiB | 1.00 s · 50 req · 15.0 MiB | 800 ms · 45 req · 30.0 MiB | absent | – | – | 1.12× regctl |\n" +
		"| export | 20 ms | 2.00 s · 10 req · 25.0 MiB | 4.00 s · 12 req · 12.0 MiB · +300 ms flush | – | – | error: oras: exit 1: boom / bang | – | 0.50× crane |\n"
	if got != want {
		t.Errorf("peer table:\n%s\nwant:\n%s", got, want)
	}
}

func TestCommandList(t *testing.T) {
	got := peerReport().commandList()
	for _, s := range []string{"- copy index\n  - `docker-imgx create -t B/x A/y`\n  - `crane copy A/y B/x`\n",
		"  - `skopeo copy --all docker://A/y docker://B/x`\n", "- export\n  - `docker-imgx export -o OUT A/z`\n"} {
		if !strings.Contains(got, s) {
			t.Errorf("command list lacks %q:\n%s", s, got)
		}
	}
	if strings.Count(got, "- export\n") != 1 {
		t.Errorf("a case listed twice:\n%s", got)
	}
}

func TestSummary(t *testing.T) {
	got := peerReport().summary()
	want := "At 20 ms per request, docker-imgx finished first on 1 of the 2 jobs it shares with crane, regctl and oras; " +
		"its largest gap was 1.12× on copy index, where regctl took 800 ms against 900 ms.\n" +
		"Its peak memory was at most 25.0 MiB in the jobs at 20 ms, against up to 30.0 MiB for the peers.\n"
	if got != want {
		t.Errorf("summary:\n%s\nwant:\n%s", got, want)
	}
	// Beside peers without latency too: a sentence of its own.
	r := peerReport()
	r.Rows = append(r.Rows, row{Case: "export", Wall: time.Second, Requests: 10, RSSKiB: 25 << 10,
		Peers: []peerResult{{Peer: peerCrane, Wall: 800 * time.Millisecond, Requests: 12, RSSKiB: 12 << 10}}})
	want = strings.Replace(want, "Its peak", "At 0 ms, where the machine's disk and cores are the limit, it finished first on 0 of 1; "+
		"its largest gap was 1.25× on export, where crane took 800 ms against 1.00 s.\nIts peak", 1)
	if got := r.summary(); got != want {
		t.Errorf("summary with a job at 0 ms:\n%s\nwant:\n%s", got, want)
	}
	if got := (report{}).summary(); !strings.HasPrefix(got, "No case ran beside a peer") {
		t.Errorf("empty summary = %q", got)
	}
}

func TestScaleTable(t *testing.T) {
	got := peerReport().scaleTable()
	want := "| Case | Latency | Count | Wall time | Per unit | Requests | Peak RSS | Under 64 MiB |\n" +
		"|---|---:|---:|---:|---:|---:|---:|---|\n" +
		"| scale: create 100 children | 0 ms | 100 | 2.00 s | 20.0 ms per child | 900 | 70.0 MiB | **no** |\n"
	if got != want {
		t.Errorf("scale table:\n%s\nwant:\n%s", got, want)
	}
	if got := peerReport().memoryNote(); !strings.Contains(got, "70.0 MiB (scale: create 100 children), **over** the 64 MiB target") {
		t.Errorf("memory note = %q", got)
	}
}

func TestSymbolPackage(t *testing.T) {
	for in, want := range map[string]string{
		"github.com/a/b.(*T).M":                       "github.com/a/b",
		"type:*github.com/a/b/c.T":                    "github.com/a/b/c",
		"go:itab.*os.File,io.Reader":                  "os",
		"runtime.mallocgc":                            "runtime",
		"github.com/a/b.F[go.shape.int]":              "github.com/a/b",
		"go.opentelemetry.io/otel/exporters/x.New":    "go.opentelemetry.io/otel/exporters/x",
		"github.com/docker-imgx/docker-imgx/cmd.main": "github.com/docker-imgx/docker-imgx/cmd",
	} {
		if got := symbolPackage(in); got != want {
			t.Errorf("symbolPackage(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestSizePerModule: a nested module wins over its parent, the rest is std.
func TestSizePerModule(t *testing.T) {
	bi := &buildinfo.BuildInfo{GoVersion: "go1.26", Main: debug.Module{Path: "example.com/main"},
		Deps: []*debug.Module{{Path: "example.com/lib", Version: "v1.0.0"}, {Path: "example.com/lib/sub", Version: "v0.1.0"},
			{Path: "gopkg.in/yaml.v3", Version: "v3.0.1"}}}
	nm := []byte("  401000 100 T example.com/main.run\n" +
		"  402000 300 T example.com/lib.F\n" +
		"  403000 50 T example.com/lib/sub.G\n" +
		"  404000 1000 T runtime.mallocgc\n" +
		"  404800 20 T gopkg.in/yaml.v3.(*decoder).unmarshal\n" +
		"  405000 0 U example.com/lib.H\n" +
		"  406000 0 d runtime.bss\n" +
		"  407000 4096 D example.com/lib.table\n")
	mods, total := sizePerModule(nm, bi)
	if total != 1470 {
		t.Errorf("total = %d, want 1470", total)
	}
	want := []string{"std=1000", "example.com/lib=300", "example.com/main=100", "example.com/lib/sub=50", "gopkg.in/yaml.v3=20"}
	for i, w := range want {
		if got := mods[i].Path + "=" + strconv.FormatInt(mods[i].Bytes, 10); got != w {
			t.Errorf("module %d = %s, want %s", i, got, w)
		}
	}
}

func TestCheckOutputSize(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "layout", "blobs"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, n := range map[string]int{"layout/blobs/a": 60, "layout/index.json": 50, "file.tar": 100} {
		if err := os.WriteFile(filepath.Join(dir, name), make([]byte, n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := checkOutputSize(filepath.Join(dir, "layout"), 110); err != nil {
		t.Errorf("folder of 110 bytes: %v", err)
	}
	if err := checkOutputSize(filepath.Join(dir, "file.tar"), 101); err == nil {
		t.Error("a 100-byte file passed for 101 bytes")
	}
	if err := checkOutputSize(filepath.Join(dir, "missing"), 1); err == nil {
		t.Error("a missing output passed")
	}
}

func TestLastLine(t *testing.T) {
	if got := lastLine("warning: x\nError: failed to copy\n\n"); got != "Error: failed to copy" {
		t.Errorf("lastLine = %q", got)
	}
}

// TestRenderAgain: results.json holds every figure, so that RESULTS.md
// written again from it is the same file.
func TestRenderAgain(t *testing.T) {
	r := peerReport()
	r.Machine = machine{CPUs: 2, CPUModel: "cpu", GoVersion: "go", Platform: "linux/amd64", Binary: "b", Date: "2026-12-02"}
	r.Startup = []startupRow{{Command: "docker-imgx version", Wall: 14 * time.Millisecond, RSSKiB: 18 << 10}}
	r.Binary = binarySize{Bytes: 1 << 20, Modules: 3, PerModule: []moduleSize{{Path: "std", Version: "go", Bytes: 1 << 19}},
		Symbols: 1 << 19, Candidates: []cutCandidate{{Module: "m", Why: "a → m"}}}
	first, second := t.TempDir(), t.TempDir()
	if err := r.write(io.Discard, first); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), []string{"-render", filepath.Join(first, resultsJSON), "-out", second}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"RESULTS.md", "chart.svg", resultsJSON} {
		a, err := os.ReadFile(filepath.Join(first, name))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(second, name))
		if err != nil {
			t.Fatal(err)
		}
		if string(a) != string(b) {
			t.Errorf("%s written again from %s differs", name, resultsJSON)
		}
	}
}

// TestPeerTableVariants: two commands of one peer (crane's loop and crane
// -P4) share its cell, the variant named, and the ratio names the variant.
func TestPeerTableVariants(t *testing.T) {
	r := report{Rows: []row{{Case: "release", Latency: 20 * time.Millisecond, Wall: time.Second, Requests: 700, RSSKiB: 40 << 10,
		Peers: []peerResult{
			{Peer: peerCrane, Wall: 7 * time.Second, Requests: 620, RSSKiB: 13 << 10},
			{Peer: peerCrane, Variant: "-p4", Wall: 2 * time.Second, Requests: 620, RSSKiB: 13 << 10},
		}}}}
	want := "| release | 20 ms | 1.00 s · 700 req · 40.0 MiB | 7.00 s · 620 req · 13.0 MiB<br>crane-p4: 2.00 s · 620 req · 13.0 MiB | – | – | – | – | 0.50× crane-p4 |\n"
	if got := r.peerTable(); !strings.HasSuffix(got, want) {
		t.Errorf("peer table:\n%s\nwant its row:\n%s", got, want)
	}
}

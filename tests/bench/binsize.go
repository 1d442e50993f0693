package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"debug/buildinfo"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// binarySize is what the binary carries: its size, its modules, and the
// size of its symbols summed per module.
type binarySize struct {
	Status  string
	Bytes   int64
	Modules int
	// Settings are the build settings go version -m shows (flags, CGO).
	Settings []string
	// PerModule is the symbol size per module, largest first.
	PerModule []moduleSize
	// Symbols is the total size of the symbols attributed.
	Symbols int64
	// Candidates are modules a user never runs, with the import chain that
	// brings each in.
	Candidates []cutCandidate
}

type moduleSize struct {
	Path    string
	Version string
	Bytes   int64
}

type cutCandidate struct {
	Module string
	Why    string
}

// cutPrefixes name modules the binary carries without a command using them
// (telemetry exporters and their RPC stacks pulled in by dependencies).
var cutPrefixes = []string{"go.opentelemetry.io/otel/exporters", "go.opentelemetry.io/proto/otlp",
	"google.golang.org/grpc", "github.com/prometheus/", "github.com/grpc-ecosystem/"}

// measureBinarySize reads the binary's build info and, from a build of the
// same package with symbols (the release build is stripped), sums `go tool
// nm -size` per module.
func measureBinarySize(ctx context.Context, binary, tmp string) binarySize {
	var bs binarySize
	fi, err := os.Stat(binary)
	if err != nil {
		return binarySize{Status: err.Error()}
	}
	bs.Bytes = fi.Size()
	bi, err := buildinfo.ReadFile(binary)
	if err != nil {
		return binarySize{Status: "no build info: " + err.Error()}
	}
	bs.Modules = len(bi.Deps)
	for _, s := range bi.Settings {
		if s.Key == "-ldflags" || s.Key == "-trimpath" || s.Key == "CGO_ENABLED" || s.Key == "-tags" || s.Key == "GOAMD64" {
			bs.Settings = append(bs.Settings, s.Key+"="+s.Value)
		}
	}
	syms := filepath.Join(tmp, "docker-imgx-symbols")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", syms, "./cmd/docker-imgx")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		bs.Status = fmt.Sprintf("build with symbols: %v: %s", err, lastLine(string(out)))
		return bs
	}
	defer os.Remove(syms)
	nm, err := exec.CommandContext(ctx, "go", "tool", "nm", "-size", syms).Output()
	if err != nil {
		bs.Status = "go tool nm: " + err.Error()
		return bs
	}
	bs.PerModule, bs.Symbols = sizePerModule(nm, bi)
	for _, m := range bi.Deps {
		if slices.ContainsFunc(cutPrefixes, func(p string) bool { return strings.HasPrefix(m.Path, p) }) {
			bs.Candidates = append(bs.Candidates, cutCandidate{Module: m.Path, Why: modWhy(ctx, m.Path)})
		}
	}
	return bs
}

// sizePerModule sums the sizes of nm's symbols by the module their package
// belongs to; the standard library and runtime count as "std".
func sizePerModule(nm []byte, bi *buildinfo.BuildInfo) ([]moduleSize, int64) {
	mods := []moduleSize{{Path: bi.Main.Path, Version: "(this module)"}}
	for _, d := range bi.Deps {
		mods = append(mods, moduleSize{Path: d.Path, Version: d.Version})
	}
	// Longest path first, so a nested module wins over its parent.
	slices.SortFunc(mods, func(a, b moduleSize) int { return cmp.Compare(len(b.Path), len(a.Path)) })
	std := moduleSize{Path: "std", Version: bi.GoVersion}
	var total int64
	bss := bssStart(nm)
	sc := bufio.NewScanner(bytes.NewReader(nm))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 {
			continue
		}
		size, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || size == 0 {
			continue
		}
		// Zeroed variables (bss) take memory at run time, no room in the file.
		if addr, err := strconv.ParseUint(f[0], 16, 64); err == nil && bss > 0 && addr >= bss {
			continue
		}
		total += size
		// Matched on the name, not on symbolPackage: a module path may
		// hold a dot after its last slash (gopkg.in/yaml.v3).
		sym := stripSymbol(strings.Join(f[3:], " "))
		i := slices.IndexFunc(mods, func(m moduleSize) bool {
			return strings.HasPrefix(sym, m.Path+".") || strings.HasPrefix(sym, m.Path+"/")
		})
		if i < 0 {
			std.Bytes += size
			continue
		}
		mods[i].Bytes += size
	}
	out := append([]moduleSize{std}, mods...)
	slices.SortStableFunc(out, func(a, b moduleSize) int { return cmp.Compare(b.Bytes, a.Bytes) })
	return out, total
}

// bssStart is the address of runtime.bss, where the zeroed sections begin
// (0 when nm does not list it).
func bssStart(nm []byte) uint64 {
	sc := bufio.NewScanner(bytes.NewReader(nm))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 4 && f[3] == "runtime.bss" {
			addr, _ := strconv.ParseUint(f[0], 16, 64)
			return addr
		}
	}
	return 0
}

// symbolPackage is the import path of the package a symbol belongs to:
// "github.com/a/b.(*T).M" -> "github.com/a/b".
func symbolPackage(name string) string {
	name = stripSymbol(name)
	slash := strings.LastIndex(name, "/")
	if dot := strings.Index(name[slash+1:], "."); dot >= 0 {
		return name[:slash+1+dot]
	}
	return name
}

// stripSymbol drops what the linker puts before a package path (the type:
// and go:itab. prefixes, a pointer's star) and what follows a function's
// package and name (receivers, type arguments).
func stripSymbol(name string) string {
	for _, p := range []string{"type:", "go:itab.", "go:", "*"} {
		name = strings.TrimPrefix(name, p)
	}
	if i := strings.IndexAny(name, "(["); i >= 0 {
		name = name[:i]
	}
	return name
}

// modWhy is the shortest import chain from this module to a package of
// mod, as `go mod why -m` prints it, on one line.
func modWhy(ctx context.Context, mod string) string {
	out, err := exec.CommandContext(ctx, "go", "mod", "why", "-m", mod).Output()
	if err != nil {
		return "unknown"
	}
	var chain []string
	for _, line := range strings.Split(string(out), "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			chain = append(chain, line)
		}
	}
	return strings.Join(chain, " → ")
}

// binaryTable renders the binary's size, its build and the largest modules.
func (r report) binaryTable() string {
	bs := r.Binary
	var b strings.Builder
	fmt.Fprintf(&b, "The release binary is %s (%s bytes), built with %s; it links %d modules.\n",
		formatSize(bs.Bytes), strconv.FormatInt(bs.Bytes, 10), orNone(strings.Join(bs.Settings, " ")), bs.Modules)
	if bs.Status != "" {
		fmt.Fprintf(&b, "\nNo breakdown: %s\n", bs.Status)
		return b.String()
	}
	fmt.Fprintf(&b, "Symbol sizes of the same build with symbols (`go tool nm -size`), summed per module (zeroed variables, which take no room in the file, left out), %s in all:\n\n", formatSize(bs.Symbols))
	b.WriteString("| Module | Version | Symbols | Share |\n|---|---|---:|---:|\n")
	for i, m := range bs.PerModule {
		if i == 20 || m.Bytes == 0 {
			break
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %.1f%% |\n", m.Path, m.Version, formatSize(m.Bytes), 100*float64(m.Bytes)/float64(bs.Symbols))
	}
	if len(bs.Candidates) > 0 {
		b.WriteString("\nCarried but never run by a command (candidates to cut), with what imports them:\n\n")
		for _, c := range bs.Candidates {
			fmt.Fprintf(&b, "- %s (%s): %s\n", c.Module, formatSize(r.moduleBytes(c.Module)), c.Why)
		}
	}
	return b.String()
}

func (r report) moduleBytes(path string) int64 {
	for _, m := range r.Binary.PerModule {
		if m.Path == path {
			return m.Bytes
		}
	}
	return 0
}

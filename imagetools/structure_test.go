package imagetools_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The project's shape, checked on every test run (docs/design.md says why):
// which package may import which, one home for each OCI rule and for the
// parsing of place prefixes, and small files and functions.

const module = "github.com/docker-imgx/docker-imgx"

// A layer is a set of packages and the layers they may import (non-test
// code; tests import what they test with). Paths are relative to the
// module; a path ending in "/" holds every package under it that no other
// layer names.
type layer struct {
	name string
	pkgs []string
	may  []string
	rule string // said when an import breaks the layer's rule
}

var layers = []layer{
	{name: "main", pkgs: []string{"cmd/"}, may: []string{"commands", "lib"},
		rule: "cmd/ starts the root command and maps errors to exit codes"},
	{name: "docs", pkgs: []string{"docs"}, may: []string{"commands"},
		rule: "the reference generator reads the command tree only"},
	{name: "commands", pkgs: []string{"commands"}, may: []string{"sets", "core", "shared", "pure", "places", "readers", "place", "leaf", "errors", "progress", "lib"},
		rule: "commands parse flags, wire the places into the router and call the core; nothing imports them but cmd/ and docs"},
	{name: "sets", pkgs: []string{"imagetools/sets"}, may: []string{"core", "shared", "pure", "place", "leaf", "errors", "progress", "lib"},
		rule: "sets runs the core once per image of a set (copy); only the commands import it"},
	{name: "core", pkgs: []string{"imagetools/create", "imagetools/inspect", "imagetools/export"}, may: []string{"shared", "pure", "place", "leaf", "errors", "progress", "lib"},
		rule: "the core works through the place interface, never a place implementation, another core package or the commands"},
	{name: "pure", pkgs: []string{"imagetools/combine"}, may: []string{"leaf", "errors"},
		rule: "combine is pure (descriptors and manifests in, index bytes out): no I/O, no place, no progress"},
	{name: "shared", pkgs: []string{"imagetools/compression"}, may: []string{"place", "leaf", "errors", "progress", "lib"},
		rule: "what several core packages share (compressions and their writers, the compression of layers for a push) works through the place interface and knows no core package or place implementation"},
	{name: "places", pkgs: []string{"imagetools/registry", "imagetools/ocilayout", "imagetools/archive", "imagetools/daemon"}, may: []string{"place", "readers", "leaf", "errors", "progress", "lib"},
		rule: "a place implements the place interface; no place imports another place, the core or the commands"},
	{name: "readers", pkgs: []string{"imagetools/imagetar"}, may: []string{"leaf", "errors", "lib"},
		rule: "a reader of an image format that places share (the image tar of archive:// and of the Docker engine's saves) knows no place"},
	{name: "place", pkgs: []string{"imagetools/place"}, may: []string{"leaf", "errors", "progress", "lib"},
		rule: "the place interface and router know no implementation"},
	{name: "leaf", pkgs: []string{"imagetools/oci", "imagetools/ref"}, may: []string{"errors"},
		rule: "oci and ref are leaves: they import no project package but the sentinel errors"},
	{name: "errors", pkgs: []string{"imagetools"}, may: nil,
		rule: "the sentinel errors import nothing, so that every package may import them"},
	{name: "progress", pkgs: []string{"progress"}, may: []string{"lib"},
		rule: "progress is handed in; it knows nothing of the core"},
	{name: "lib", pkgs: []string{"internal/atomicfile", "internal/termtext", "internal/version"}, may: nil,
		rule: "the internal libraries of the product import no project package"},
	{name: "testhelper", pkgs: []string{"internal/"}, may: []string{"core", "shared", "pure", "places", "readers", "place", "leaf", "errors", "progress", "lib", "testhelper"},
		rule: "test helpers (fixtures, test registries, proxies) are imported by tests and tests/ only, and never import the commands"},
	{name: "tests", pkgs: []string{"tests", "tests/"}, may: []string{"commands", "sets", "core", "shared", "pure", "places", "readers", "place", "leaf", "errors", "progress", "lib", "testhelper"},
		rule: "tests/ holds the integration tests, the bench and the demo registry"},
}

// edgeExceptions are imports the layers forbid that the code needs today,
// each with why; the lead tightens them as the code moves. An exception
// no import uses fails the test, unless pending says it waits for a
// change on another branch.
var edgeExceptions = []exception{
	{from: "imagetools/export", to: "imagetools/daemon",
		why: "export --load plans against the Docker engine's answer (daemon.Ask) and streams its tar into daemon.Load, or has the engine pull a registry image (daemon.Pull); daemon, the consumer of the tar, never imports export"},
}

// exception allows what a rule forbids, saying why. A pending exception
// waits for a change on another branch: unused, it is only logged.
type exception struct {
	from, to, why string
	pending       bool
}

// pkg is what go list says of a package of the module.
type pkg struct {
	ImportPath string
	Dir        string
	GoFiles    []string
	Imports    []string
}

// rel is the package's path inside the module.
func (p pkg) rel() string { return strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/") }

// listPackages runs go list over the module: the import graph as the
// compiler sees it, not as file names spell it.
func listPackages(t *testing.T) []pkg {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command("go", "list", "-json=ImportPath,Dir,GoFiles,Imports", module+"/...")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v: %s", err, stderr.Bytes())
	}
	var pkgs []pkg
	for dec := json.NewDecoder(bytes.NewReader(out)); ; {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 20 {
		t.Fatalf("go list found %d packages of %s", len(pkgs), module)
	}
	return pkgs
}

// layerOf returns the layer of a package: the one naming it exactly, else
// the one with the longest folder holding it.
func layerOf(rel string) (layer, bool) {
	var best layer
	bestLen := -1
	for _, l := range layers {
		for _, p := range l.pkgs {
			if p == rel {
				return l, true
			}
			if strings.HasSuffix(p, "/") && strings.HasPrefix(rel, p) && len(p) > bestLen {
				best, bestLen = l, len(p)
			}
		}
	}
	return best, bestLen >= 0
}

// forbiddenImports returns one line per import of the module's packages
// that the layers forbid and no exception allows, and the exceptions used.
func forbiddenImports(pkgs []pkg) (bad []string, used map[string]bool) {
	used = map[string]bool{}
	for _, p := range pkgs {
		from, ok := layerOf(p.rel())
		if !ok {
			bad = append(bad, p.rel()+" is in no layer: add it to layers in imagetools/structure_test.go")
			continue
		}
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module+"/") && imp != module {
				continue
			}
			rel := strings.TrimPrefix(strings.TrimPrefix(imp, module), "/")
			to, ok := layerOf(rel)
			if ok && slices.Contains(from.may, to.name) {
				continue
			}
			if i := slices.IndexFunc(edgeExceptions, func(e exception) bool {
				return e.from == p.rel() && e.to == rel
			}); i >= 0 {
				used[p.rel()+" -> "+rel] = true
				continue
			}
			bad = append(bad, p.rel()+" imports "+rel+" ("+from.name+" -> "+to.name+"): "+from.rule)
		}
	}
	return bad, used
}

func TestImportGraph(t *testing.T) {
	pkgs := listPackages(t)
	bad, used := forbiddenImports(pkgs)
	for _, b := range bad {
		t.Error(b)
	}
	for _, e := range edgeExceptions {
		switch {
		case used[e.from+" -> "+e.to]:
		case e.pending:
			t.Logf("exception %s -> %s is not used yet (pending: %s)", e.from, e.to, e.why)
		default:
			t.Errorf("exception %s -> %s is used by no import: delete it from edgeExceptions", e.from, e.to)
		}
	}
	// Every layer names packages that exist, so that the table does not
	// drift from the tree it checks.
	have := map[string]bool{}
	for _, p := range pkgs {
		have[p.rel()] = true
	}
	for _, l := range layers {
		for _, p := range l.pkgs {
			if !strings.HasSuffix(p, "/") && !have[p] {
				t.Errorf("layer %s names %s, which is no package", l.name, p)
			}
		}
	}
}

// TestImportGraphRefuses shows that the check names a forbidden edge and
// its rule: a place that imports another place, and product code that
// imports a test helper.
func TestImportGraphRefuses(t *testing.T) {
	pkgs := []pkg{
		{ImportPath: module + "/imagetools/ocilayout", Imports: []string{module + "/imagetools/registry", module + "/imagetools/ref"}},
		{ImportPath: module + "/imagetools/create", Imports: []string{module + "/internal/fixture", module + "/imagetools/place"}},
		{ImportPath: module + "/imagetools/oci", Imports: []string{module + "/imagetools/ref"}},
		{ImportPath: module + "/imagetools/daemon", Imports: []string{module + "/imagetools/archive"}},
		{ImportPath: module + "/imagetools/export", Imports: []string{module + "/imagetools/daemon"}},
		{ImportPath: module + "/imagetools/newthing"},
	}
	bad, used := forbiddenImports(pkgs)
	want := []string{
		"imagetools/ocilayout imports imagetools/registry (places -> places): a place implements the place interface; no place imports another place",
		"imagetools/create imports internal/fixture (core -> testhelper): the core works through the place interface",
		"imagetools/oci imports imagetools/ref (leaf -> leaf): oci and ref are leaves",
		"imagetools/daemon imports imagetools/archive (places -> places): a place implements the place interface; no place imports another place",
		"imagetools/newthing is in no layer",
	}
	if len(bad) != len(want) {
		t.Fatalf("got %d refusals, want %d:\n%s", len(bad), len(want), strings.Join(bad, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(bad[i], want[i]) {
			t.Errorf("refusal %d = %q, want it to start %q", i, bad[i], want[i])
		}
	}
	if !used["imagetools/export -> imagetools/daemon"] {
		t.Errorf("the export -> daemon exception was not applied: %v", used)
	}
}

// productFiles parses the non-test Go files of the product: every package
// but the test helpers and tests/, whose fixtures write OCI facts out on
// purpose so that tests do not check the code against itself.
func productFiles(t *testing.T) (*token.FileSet, map[string][]*ast.File) {
	t.Helper()
	fset := token.NewFileSet()
	files := map[string][]*ast.File{}
	for _, p := range listPackages(t) {
		if l, _ := layerOf(p.rel()); l.name == "testhelper" || l.name == "tests" {
			continue
		}
		for _, name := range p.GoFiles {
			f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			files[p.rel()] = append(files[p.rel()], f)
		}
	}
	return fset, files
}

// importNames maps the names a file refers to its imports by to their paths.
func importNames(f *ast.File) map[string]string {
	names := map[string]string{}
	for _, imp := range f.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		name := filepath.Base(path)
		if strings.HasPrefix(name, "v") && strings.Contains(path, "/") {
			// A major version suffix (containerd/v2) is not the name.
			if _, err := strconv.Atoi(name[1:]); err == nil {
				name = filepath.Base(filepath.Dir(path))
			}
		}
		if imp.Name != nil {
			name = imp.Name.Name
		}
		names[name] = path
	}
	return names
}

// qualified returns the import path and name of a selector written
// PKG.Name, or "" when X is not an imported package.
func qualified(sel *ast.SelectorExpr, imports map[string]string) (string, string) {
	id, ok := sel.X.(*ast.Ident)
	if !ok || id.Obj != nil {
		return "", ""
	}
	return imports[id.Name], sel.Sel.Name
}

// TestOneHomeForEachRule fails when product code outside a rule's home
// package uses the library call, or writes the literal, that the rule's
// one definition wraps, or declares a function or constant of the same
// name as one of the rules: two copies of a rule drift.
func TestOneHomeForEachRule(t *testing.T) {
	const (
		platforms = "github.com/containerd/platforms"
		images    = "github.com/containerd/containerd/v2/core/images"
	)
	calls := map[[2]string]string{ // library identifier -> the rule's home
		{platforms, "Only"}:                        "imagetools/oci",
		{platforms, "OnlyStrict"}:                  "imagetools/oci",
		{images, "MediaTypeDockerSchema2Config"}:   "imagetools/oci",
		{images, "MediaTypeDockerSchema2Manifest"}: "imagetools/oci",
	}
	literals := map[string]string{ // text in a string literal -> the rule's home
		"vnd.docker.reference.type": "imagetools/oci",
		"attestation-manifest":      "imagetools/oci",
		"application/vnd.docker.":   "imagetools/oci",
		"oci-layout://":             "imagetools/ref",
		"archive://":                "imagetools/ref",
		"docker-daemon://":          "imagetools/ref",
		"docker-archive:":           "imagetools/ref",
		"oci-archive:":              "imagetools/ref",
	}
	fset, files := productFiles(t)
	// The rules are the exported functions and constants of oci and ref.
	type rule struct{ home, name string }
	rules := map[string]rule{}
	for _, home := range []string{"imagetools/oci", "imagetools/ref"} {
		for _, f := range files[home] {
			for name := range topLevel(f) {
				if ast.IsExported(name) {
					rules[strings.ToLower(name)] = rule{home, name}
				}
			}
		}
	}
	for rel, fs := range files {
		// The command layer's help text names the prefixes for users.
		core := strings.HasPrefix(rel, "imagetools/")
		for _, f := range fs {
			imports := importNames(f)
			for name, decl := range topLevel(f) {
				r, ok := rules[strings.ToLower(name)]
				if ok && core && r.home != rel && !uses(decl, imports, module+"/"+r.home, r.name) {
					t.Errorf("%s: %s declares %s again: call %s.%s", fset.Position(decl.Pos()), rel, name, filepath.Base(r.home), r.name)
				}
			}
			ast.Inspect(f, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.SelectorExpr:
					path, name := qualified(n, imports)
					if home, ok := calls[[2]string{path, name}]; ok && home != rel {
						t.Errorf("%s: %s uses %s.%s: that rule is written once, in %s", fset.Position(n.Pos()), rel, filepath.Base(path), name, home)
					}
				case *ast.BasicLit:
					if n.Kind != token.STRING {
						break
					}
					s, _ := strconv.Unquote(n.Value)
					for text, home := range literals {
						if core && strings.Contains(s, text) && home != rel {
							t.Errorf("%s: %s writes %q: that fact is written once, in %s", fset.Position(n.Pos()), rel, text, home)
						}
					}
				}
				return true
			})
		}
	}
}

// topLevel returns the functions (not methods) and constants a file
// declares, by name.
func topLevel(f *ast.File) map[string]ast.Node {
	names := map[string]ast.Node{}
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			if d.Recv == nil {
				names[d.Name.Name] = d
			}
		case *ast.GenDecl:
			if d.Tok != token.CONST {
				continue
			}
			for _, s := range d.Specs {
				for _, n := range s.(*ast.ValueSpec).Names {
					names[n.Name] = n
				}
			}
		}
	}
	return names
}

// uses reports whether node refers to path.name: a function named like a
// rule that calls the rule wraps it rather than copying it.
func uses(node ast.Node, imports map[string]string, path, name string) bool {
	found := false
	ast.Inspect(node, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok {
			if p, s := qualified(sel, imports); p == path && s == name {
				found = true
			}
		}
		return !found
	})
	return found
}

// prefixParsers are the files outside ref that may still take a place
// prefix apart themselves, and why.
var prefixParsers = []exception{
	{from: "commands/completion.go", why: "shell completion reads half-typed words, which ref.Parse refuses"},
}

// TestRefParsesPlacePrefixes fails when code outside ref takes a location
// apart by a place prefix (strings.HasPrefix(s, ref.LayoutPrefix) and the
// like) or names a place's scheme above the place interface: ref parses
// locations, places and the router tell them apart, and the core asks
// place.Capabilities.
func TestRefParsesPlacePrefixes(t *testing.T) {
	const refPath = module + "/imagetools/ref"
	fset, files := productFiles(t)
	parsing := map[string]bool{}
	for rel, fs := range files {
		if rel == "imagetools/ref" {
			continue
		}
		l, _ := layerOf(rel)
		for _, f := range fs {
			imports := importNames(f)
			file := rel + "/" + filepath.Base(fset.File(f.Pos()).Name())
			ast.Inspect(f, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.CallExpr:
					sel, ok := n.Fun.(*ast.SelectorExpr)
					if !ok {
						break
					}
					if path, _ := qualified(sel, imports); path != "strings" {
						break
					}
					for _, a := range n.Args {
						as, ok := a.(*ast.SelectorExpr)
						if !ok {
							continue
						}
						if path, name := qualified(as, imports); path == refPath && strings.HasSuffix(name, "Prefix") {
							parsing[file] = true
							if !slices.ContainsFunc(prefixParsers, func(e exception) bool { return e.from == file }) {
								t.Errorf("%s: %s takes a location apart by ref.%s: ask ref (ref.Parse, ref.PlaceForm)", fset.Position(n.Pos()), rel, name)
							}
						}
					}
				case *ast.SelectorExpr:
					if l.name != "core" && l.name != "pure" && l.name != "sets" {
						break
					}
					if path, name := qualified(n, imports); (path == refPath && strings.HasPrefix(name, "Scheme")) || n.Sel.Name == "Scheme" {
						t.Errorf("%s: %s reads the kind of a place (%s): ask place.Capabilities", fset.Position(n.Pos()), rel, n.Sel.Name)
					}
				}
				return true
			})
		}
	}
	for _, e := range prefixParsers {
		switch {
		case parsing[e.from]:
		case e.pending:
			t.Logf("%s no longer parses place prefixes: delete its exception (pending: %s)", e.from, e.why)
		default:
			t.Errorf("%s no longer parses place prefixes: delete its exception from prefixParsers", e.from)
		}
	}
}

const (
	maxFileLines = 600
	maxFuncLines = 60
	// maxCommandFileLines: a command parses flags, builds one options value
	// and hands it to the core; a longer file does the core's work.
	maxCommandFileLines = 200
)

func TestCoreFileAndFunctionSizes(t *testing.T) {
	if n := checkSizes(t, ".", maxFileLines, maxFuncLines); n < 20 {
		t.Fatalf("found %d core files: run from imagetools/", n)
	}
}

func TestCommandsFileAndFunctionSizes(t *testing.T) {
	if n := checkSizes(t, "../commands", maxCommandFileLines, maxFuncLines); n < 5 {
		t.Fatalf("found %d command files: run from imagetools/", n)
	}
}

// checkSizes fails t for each non-test Go file under dir over maxFile lines
// and each function over maxFunc, and returns how many files it read.
func checkSizes(t *testing.T, dir string, maxFile, maxFunc int) int {
	t.Helper()
	fset := token.NewFileSet()
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		n++
		if lines := fset.File(f.Pos()).LineCount(); lines > maxFile {
			t.Errorf("%s: %d lines, over %d: split it by concern", path, lines, maxFile)
		}
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			if lines := fset.Position(fd.End()).Line - fset.Position(fd.Pos()).Line + 1; lines > maxFunc {
				t.Errorf("%s: %s is %d lines, over %d", path, fd.Name.Name, lines, maxFunc)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

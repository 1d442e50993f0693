package imagetools_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The engine's shape, checked on every test run (docs/design.md says why):
// small files and functions, and no code above the place interface that
// asks which kind of place it holds.
const (
	maxFileLines = 600
	maxFuncLines = 60
)

// placeAware are the packages that may tell kinds of place apart: the
// locations themselves, the router, and the place implementations.
var placeAware = []string{"ref", "place", "registry", "ocilayout"}

// engineFiles parses every non-test Go file of the engine, by path.
func engineFiles(t *testing.T) (*token.FileSet, map[string]*ast.File) {
	t.Helper()
	fset := token.NewFileSet()
	files := map[string]*ast.File{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		files[path] = f
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 20 {
		t.Fatalf("found %d engine files: run from imagetools/", len(files))
	}
	return fset, files
}

func TestEngineFileAndFunctionSizes(t *testing.T) {
	fset, files := engineFiles(t)
	for path, f := range files {
		if n := fset.File(f.Pos()).LineCount(); n > maxFileLines {
			t.Errorf("%s: %d lines, over %d: split it by concern", path, n, maxFileLines)
		}
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			if n := fset.Position(fd.End()).Line - fset.Position(fd.Pos()).Line + 1; n > maxFuncLines {
				t.Errorf("%s: %s is %d lines, over %d", path, fd.Name.Name, n, maxFuncLines)
			}
		}
	}
}

// TestNoPlaceKindAbovePlaces fails when code outside the place packages
// reads a location's Scheme or names a scheme: such code must ask
// place.Capabilities instead, so that a new place needs no change there.
func TestNoPlaceKindAbovePlaces(t *testing.T) {
	fset, files := engineFiles(t)
	for path, f := range files {
		if slices.Contains(placeAware, strings.Split(filepath.ToSlash(path), "/")[0]) {
			continue
		}
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if ok && (sel.Sel.Name == "Scheme" || strings.HasPrefix(sel.Sel.Name, "Scheme")) {
				t.Errorf("%s: %s reads the kind of a place (%s): ask place.Capabilities", path, fset.Position(sel.Pos()), sel.Sel.Name)
			}
			return true
		})
	}
}

// TestOneDefinitionOfEachRule fails when an OCI rule written once in
// package oci is written again elsewhere in the engine.
func TestOneDefinitionOfEachRule(t *testing.T) {
	rules := map[string]string{
		`"vnd.docker.reference.type"`:  "the attestation annotation (oci.IsAttestation)",
		`"attestation-manifest"`:       "the attestation marker (oci.IsAttestation)",
		"platforms.Only(":              "platform matching (oci.BestMatch)",
		"DefaultConcurrency":           "the default concurrency (oci.DefaultMaxConcurrency)",
		`"oci-layout://"`:              "the layout prefix (ref.LayoutPrefix)",
		"io.LimitReader(rc, ":          "small-blob reads (oci.ReadBlob)",
		"\"application/vnd.docker.\"":  "the Docker media-type prefix (oci.DockerMediaTypePrefix)",
		"func isAttestation":           "attestation detection (oci.IsAttestation)",
		"func fetchBlob":               "small-blob reads (oci.ReadBlob)",
		"func detectMediaType":         "media-type detection (oci.DetectMediaType)",
		"func selectPlatform":          "platform matching (oci.SelectPlatform)",
		"func bestMatch":               "platform matching (oci.BestMatch)",
		"const MaxManifestSize":        "the manifest size limit (oci.MaxManifestSize)",
		"const DefaultMaxConcurrency":  "the default concurrency (oci.DefaultMaxConcurrency)",
		"const LayoutPrefix":           "the layout prefix (ref.LayoutPrefix)",
		"metadataFactor":               "the small-request bound (oci.MetadataLimit)",
		"func metadataLimit":           "the small-request bound (oci.MetadataLimit)",
		"func ValidatePlatform":        "variant validation (oci.ValidatePlatform)",
		"func CheckConfig":             "the image-config check (oci.CheckConfig)",
		"func NewVerifyingReader":      "digest verification (oci.NewVerifyingReader)",
		"\"unknown\" && ":              "attestation detection (oci.IsAttestation)",
		"MediaTypeDockerSchema2Config": "the image-config media types (oci.IsImageConfig)",
	}
	// home is the one package a rule's text may stand in; a rule with no
	// home stands nowhere (its old copies are gone).
	home := map[string]string{
		"func ValidatePlatform": "oci/", "func CheckConfig": "oci/", "func NewVerifyingReader": "oci/",
		"const MaxManifestSize": "oci/", "const DefaultMaxConcurrency": "oci/", "const LayoutPrefix": "ref/",
		"\"attestation-manifest\"": "oci/", "platforms.Only(": "oci/", `"oci-layout://"`: "ref/",
		"\"unknown\" && ": "oci/", "MediaTypeDockerSchema2Config": "oci/", "io.LimitReader(rc, ": "oci/", "\"application/vnd.docker.\"": "oci/",
	}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		dt, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for needle, rule := range rules {
			at, ok := home[needle]
			if strings.Contains(string(dt), needle) && (!ok || !strings.HasPrefix(filepath.ToSlash(path), at)) {
				t.Errorf("%s writes %s again (%q): call the one definition", path, rule, needle)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

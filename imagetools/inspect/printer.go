package inspect

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
	"text/template"

	"github.com/containerd/platforms"
	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/docker-imgx/docker-imgx/internal/termtext"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// defaultTextFormat is the template whose output is the text view, as in buildx.
const defaultTextFormat = "{{.Manifest}}"

// ManifestView is .Manifest in templates: the manifest or index body with
// its descriptor fields (digest, size, platform) beside it.
type ManifestView struct {
	SchemaVersion int                  `json:"schemaVersion"`
	MediaType     string               `json:"mediaType,omitempty"`
	Digest        digest.Digest        `json:"digest"`
	Size          int64                `json:"size"`
	Platform      *ocispec.Platform    `json:"platform,omitempty"`
	ArtifactType  string               `json:"artifactType,omitempty"`
	Config        *ocispec.Descriptor  `json:"config,omitempty"`
	Layers        []ocispec.Descriptor `json:"layers,omitempty"`
	Manifests     []ocispec.Descriptor `json:"manifests,omitempty"`
	Subject       *ocispec.Descriptor  `json:"subject,omitempty"`
	Annotations   map[string]string    `json:"annotations,omitempty"`
}

// ProvenanceView is .Provenance: the SLSA predicate.
type ProvenanceView struct {
	SLSA any `json:"SLSA,omitempty"`
}

// SBOMView is .SBOM: the first SPDX document and any further ones.
type SBOMView struct {
	SPDX            any   `json:"SPDX,omitempty"`
	AdditionalSPDXs []any `json:"AdditionalSPDXs,omitempty"`
}

// TemplateData is what --format templates see. Image, Provenance and SBOM
// are single values for one image and maps keyed by platform for several.
type TemplateData struct {
	Name       string       `json:"name"`
	Manifest   ManifestView `json:"manifest"`
	Image      any          `json:"image,omitempty"`
	Provenance any          `json:"provenance,omitempty"`
	SBOM       any          `json:"sbom,omitempty"`
	// Platforms lists the image platforms of an index, sorted.
	Platforms []string `json:"platforms,omitempty"`
	// Warnings are config checks that failed (see CheckConfig).
	Warnings []string `json:"warnings,omitempty"`
}

// Printer renders a loaded image.
type Printer struct {
	img *Image
}

// NewPrinter returns a printer for img.
func NewPrinter(img *Image) *Printer { return &Printer{img: img} }

// Raw writes the manifest bytes exactly as fetched.
func (p *Printer) Raw(w io.Writer) error {
	_, err := w.Write(p.img.Raw)
	return err
}

// Format writes the image through a Go template; "json" prints all data
// as indented JSON and "{{.Manifest}}" the text view. Output ends in a newline.
func (p *Printer) Format(w io.Writer, format string) error {
	switch strings.TrimSpace(format) {
	case "", defaultTextFormat:
		return p.Text(w)
	case "json":
		return writeJSON(w, p.Data())
	}
	tmpl, err := template.New("format").Funcs(template.FuncMap{
		"json": func(v any) (string, error) {
			dt, err := json.MarshalIndent(v, "", "  ")
			return string(dt), err
		},
	}).Parse(format)
	if err != nil {
		return &FormatError{Format: format, Err: err, Hint: "want json, or a Go template such as '{{json .Manifest}}'"}
	}
	var sb strings.Builder
	if err := tmpl.Execute(&sb, p.Data()); err != nil {
		return templateExecError(format, err)
	}
	out := sb.String()
	if !strings.HasSuffix(out, "\n") {
		out += "\n"
	}
	_, err = io.WriteString(w, out)
	return err
}

func writeJSON(w io.Writer, v any) error {
	dt, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", dt)
	return err
}

// Data builds the template data.
func (p *Printer) Data() TemplateData {
	img := p.img
	d := TemplateData{Name: img.Location.String(), Manifest: p.manifestView(), Warnings: img.Warnings}
	if img.Manifest != nil {
		if cfg := img.Configs[img.Desc.Digest]; cfg != nil {
			d.Image = cfg
		}
		if att := img.Attestations[img.Desc.Digest]; att != nil {
			d.Provenance, d.SBOM = provenanceOf(att), sbomOf(att)
		}
		return d
	}
	images, provs, sboms := map[string]any{}, map[string]any{}, map[string]any{}
	for _, c := range img.Index.Manifests {
		if c.Platform == nil || oci.IsAttestation(c) {
			continue
		}
		key := platforms.Format(*c.Platform)
		if _, dup := images[key]; dup {
			continue
		}
		d.Platforms = append(d.Platforms, key)
		if cfg := img.Configs[c.Digest]; cfg != nil {
			images[key] = cfg
		}
		if att := img.Attestations[c.Digest]; att != nil {
			provs[key], sboms[key] = provenanceOf(att), sbomOf(att)
		}
	}
	slices.Sort(d.Platforms)
	d.Image, d.Provenance, d.SBOM = nilIfEmpty(images), nilIfEmpty(provs), nilIfEmpty(sboms)
	return d
}

func nilIfEmpty(m map[string]any) any {
	if len(m) == 0 {
		return nil
	}
	return m
}

func provenanceOf(a *Attestation) *ProvenanceView {
	if a.SLSA == nil {
		return nil
	}
	return &ProvenanceView{SLSA: a.SLSA}
}

func sbomOf(a *Attestation) *SBOMView {
	if len(a.SPDX) == 0 {
		return nil
	}
	return &SBOMView{SPDX: a.SPDX[0], AdditionalSPDXs: a.SPDX[1:]}
}

func (p *Printer) manifestView() ManifestView {
	img := p.img
	v := ManifestView{MediaType: img.Desc.MediaType, Digest: img.Desc.Digest, Size: img.Desc.Size, Platform: p.platform()}
	if m := img.Manifest; m != nil {
		v.SchemaVersion, v.ArtifactType, v.Subject, v.Annotations = m.SchemaVersion, m.ArtifactType, m.Subject, m.Annotations
		cfg := m.Config
		v.Config, v.Layers = &cfg, m.Layers
	}
	if x := img.Index; x != nil {
		v.SchemaVersion, v.ArtifactType, v.Subject, v.Annotations = x.SchemaVersion, x.ArtifactType, x.Subject, x.Annotations
		v.Manifests = x.Manifests
	}
	return v
}

// platform of a single image: from its descriptor, else from its config.
func (p *Printer) platform() *ocispec.Platform {
	img := p.img
	if img.Manifest == nil {
		return nil
	}
	if img.Desc.Platform != nil {
		return img.Desc.Platform
	}
	if cfg := img.Configs[img.Desc.Digest]; cfg != nil && cfg.OS != "" {
		pl := platforms.Normalize(cfg.Platform)
		return &pl
	}
	return nil
}

// Text writes the buildx-style text view, with sorted annotations. Blank
// lines carry no tab, so each block is aligned on its own, as buildx prints.
func (p *Printer) Text(out io.Writer) error {
	w := tabwriter.NewWriter(out, 0, 0, 1, ' ', 0)
	img := p.img
	fmt.Fprintf(w, "Name:\t%s\n", termtext.Escape(img.Location.String()))
	fmt.Fprintf(w, "MediaType:\t%s\n", termtext.Escape(img.Desc.MediaType))
	fmt.Fprintf(w, "Digest:\t%s\n", termtext.Escape(img.Desc.Digest.String()))
	if img.Index != nil {
		return p.textIndex(out, w)
	}
	return p.textManifest(out, w)
}

func (p *Printer) textIndex(out io.Writer, w *tabwriter.Writer) error {
	idx := p.img.Index
	writeArtifact(w, "", idx.ArtifactType, idx.Subject)
	if err := writeAnnotations(out, w, "", idx.Annotations); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nManifests:\n")
	for i, m := range idx.Manifests {
		if i != 0 {
			fmt.Fprintf(w, "\n")
		}
		fmt.Fprintf(w, "  Name:\t%s@%s\n", termtext.Escape(p.img.Location.Repository()), termtext.Escape(m.Digest.String()))
		fmt.Fprintf(w, "  MediaType:\t%s\n", termtext.Escape(m.MediaType))
		if m.Platform != nil {
			fmt.Fprintf(w, "  Platform:\t%s\n", termtext.Escape(platforms.Format(*m.Platform)))
		}
		writeArtifact(w, "  ", m.ArtifactType, nil)
		if err := writeAnnotations(out, w, "  ", m.Annotations); err != nil {
			return err
		}
	}
	return w.Flush()
}

func (p *Printer) textManifest(out io.Writer, w *tabwriter.Writer) error {
	m := p.img.Manifest
	if pl := p.platform(); pl != nil {
		fmt.Fprintf(w, "Platform:\t%s\n", termtext.Escape(platforms.Format(*pl)))
	}
	writeArtifact(w, "", m.ArtifactType, m.Subject)
	total := m.Config.Size
	for _, l := range m.Layers {
		total += l.Size
	}
	fmt.Fprintf(w, "Config:\t%s\n", termtext.Escape(m.Config.Digest.String()))
	fmt.Fprintf(w, "Size:\t%d\n", total)
	if err := writeAnnotations(out, w, "", m.Annotations); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nLayers:\n")
	for i, l := range m.Layers {
		if i != 0 {
			fmt.Fprintf(w, "\n")
		}
		fmt.Fprintf(w, "  Digest:\t%s\n", termtext.Escape(l.Digest.String()))
		fmt.Fprintf(w, "  MediaType:\t%s\n", termtext.Escape(l.MediaType))
		fmt.Fprintf(w, "  Size:\t%d\n", l.Size)
	}
	return w.Flush()
}

// writeArtifact prints an artifact's type and the manifest it refers to,
// when there are any: an image has neither.
func writeArtifact(w io.Writer, pfx, artifactType string, subject *ocispec.Descriptor) {
	if artifactType != "" {
		fmt.Fprintf(w, "%sArtifactType:\t%s\n", pfx, termtext.Escape(artifactType))
	}
	if subject != nil {
		fmt.Fprintf(w, "%sSubject:\t%s\n", pfx, termtext.Escape(subject.Digest.String()))
	}
}

// writeAnnotations prints sorted annotations in their own aligned block, so
// long keys do not push the outer columns, as buildx does.
func writeAnnotations(out io.Writer, w *tabwriter.Writer, pfx string, ann map[string]string) error {
	if len(ann) == 0 {
		return nil
	}
	fmt.Fprintf(w, "%sAnnotations:\t\n", pfx)
	if err := w.Flush(); err != nil {
		return err
	}
	w2 := tabwriter.NewWriter(out, 0, 0, 1, ' ', 0)
	for _, k := range slices.Sorted(maps.Keys(ann)) {
		fmt.Fprintf(w2, "%s  %s:\t%s\n", pfx, termtext.Escape(k), termtext.Escape(ann[k]))
	}
	return w2.Flush()
}

// TemplateField is one field a --format template sees, for help and errors.
type TemplateField struct {
	Name, Help string
}

// TemplateFields are the fields of TemplateData, in its order: the help of
// inspect lists them and an unknown field's error names them.
var TemplateFields = []TemplateField{
	{".Name", "the name as given"},
	{".Manifest", "the manifest or index, with its .Digest, .Size and .Platform"},
	{".Image", "the image config; for an index a map by platform (index .Image \"linux/amd64\")"},
	{".Provenance", "the SLSA provenance attestation (.SLSA); by platform for an index"},
	{".SBOM", "the SPDX SBOM attestation (.SPDX, .AdditionalSPDXs); by platform for an index"},
	{".Platforms", "the sorted platforms of an index"},
	{".Warnings", "config checks that failed"},
}

// unknownFieldPattern finds the field a template asked for that does not
// exist, and the type it was asked of.
var unknownFieldPattern = regexp.MustCompile(`can't evaluate field (\w+) in type [\w.*]*\b(TemplateData|ManifestView)\b`)

// templateExecError names an unknown field of the data or of .Manifest and
// lists the ones there are, instead of Go's type name.
func templateExecError(format string, err error) error {
	m := unknownFieldPattern.FindStringSubmatch(err.Error())
	if m == nil {
		return &FormatError{Format: format, Err: err, Run: true}
	}
	var names []string
	if m[2] == "ManifestView" {
		t := reflect.TypeFor[ManifestView]()
		for i := range t.NumField() {
			names = append(names, "."+t.Field(i).Name)
		}
		return &FormatError{Format: format, Err: fmt.Errorf("no field .Manifest.%s", m[1]), Hint: "fields of .Manifest: " + strings.Join(names, ", ")}
	}
	for _, f := range TemplateFields {
		names = append(names, f.Name)
	}
	return &FormatError{Format: format, Err: fmt.Errorf("no field .%s", m[1]), Hint: "fields: " + strings.Join(names, ", ")}
}

// FormatError is an output format (a Go template) that does not parse, or
// fails when run. Error words it without naming a flag; the command layer
// names its flag with Explain.
type FormatError struct {
	Format string
	Err    error
	// Run is set when the template parsed but failed on the data.
	Run bool
	// Hint says what is valid, when known.
	Hint string
}

// Error implements error.
func (e *FormatError) Error() string { return e.Explain("format") }

// Explain words the error for the flag (or setting) that gave the format.
func (e *FormatError) Explain(flag string) string {
	if e.Run {
		return fmt.Sprintf("run %s %q: %v", flag, e.Format, e.Err)
	}
	msg := fmt.Sprintf("invalid %s %q: %v", flag, e.Format, e.Err)
	if e.Hint != "" {
		msg += " (" + e.Hint + ")"
	}
	return msg
}

// Unwrap returns the template's own error.
func (e *FormatError) Unwrap() error { return e.Err }

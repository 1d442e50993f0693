package commands

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/docker-imgx/docker-imgx/imagetools/export"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/docker-imgx/docker-imgx/progress"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"
)

// commonPlatforms are offered for --platform: the platforms images are
// commonly built for, as docker buildx names them.
var commonPlatforms = []string{
	"linux/amd64", "linux/arm64", "linux/arm/v7", "linux/arm/v6", "linux/386",
	"linux/ppc64le", "linux/s390x", "linux/riscv64", "windows/amd64", "windows/arm64",
}

// registerCompletions binds a completion to each named flag of cmd.
func registerCompletions(cmd *cobra.Command, funcs map[string]cobra.CompletionFunc) {
	for name, fn := range funcs {
		if err := cmd.RegisterFlagCompletionFunc(name, fn); err != nil {
			panic(err) // a flag name that does not exist: a programming error
		}
	}
}

// noCompletion offers nothing, not even file names.
func noCompletion(_ *cobra.Command, _ []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return nil, cobra.ShellCompDirectiveNoFileComp
}

// completeValues offers fixed values, one list item at a time for flags
// that take comma lists (linux/amd64,li<TAB>).
func completeValues(values ...string) cobra.CompletionFunc {
	return func(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		head, last := "", toComplete
		if i := strings.LastIndex(toComplete, ","); i >= 0 {
			head, last = toComplete[:i+1], toComplete[i+1:]
		}
		var out []cobra.Completion
		for _, v := range values {
			if strings.HasPrefix(v, last) {
				out = append(out, head+v)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeProgress offers the --progress modes.
func completeProgress() cobra.CompletionFunc { return completeValues(progress.Modes()...) }

// completePlatforms offers common platforms, and "all" where it is taken.
func completePlatforms(all bool) cobra.CompletionFunc {
	if all {
		return completeValues(append([]string{allPlatforms}, commonPlatforms...)...)
	}
	return completeValues(commonPlatforms...)
}

// completeExportFormat offers export's --format values.
func completeExportFormat() cobra.CompletionFunc {
	return completeValues(export.FormatDocker, export.FormatOCI)
}

// completeFile lets the shell complete file names (-f, --metadata-file).
func completeFile(_ *cobra.Command, _ []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return nil, cobra.ShellCompDirectiveDefault
}

// completeOutput completes -o: a file, or a folder after oci-layout://.
func completeOutput(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if strings.HasPrefix(toComplete, ref.LayoutPrefix) {
		return completePathAfter(ref.LayoutPrefix, toComplete, true)
	}
	if toComplete != "" && strings.HasPrefix(ref.LayoutPrefix, toComplete) {
		return []cobra.Completion{ref.LayoutPrefix}, cobra.ShellCompDirectiveNoSpace | cobra.ShellCompDirectiveNoFileComp
	}
	return nil, cobra.ShellCompDirectiveDefault
}

// completeSource completes an image argument: paths after oci-layout://
// (folders) and archive:// (files), the Docker engine's images after
// docker-daemon://, and the tags of a registry repository after NAME: (see
// completeremote.go; silent and short when nothing answers).
func completeSource(dockerCli command.Cli, root *rootOptions) cobra.CompletionFunc {
	return func(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		switch {
		case strings.HasPrefix(toComplete, ref.LayoutPrefix):
			return completePathAfter(ref.LayoutPrefix, toComplete, true)
		case strings.HasPrefix(toComplete, ref.ArchivePrefix):
			return completePathAfter(ref.ArchivePrefix, toComplete, false)
		case strings.HasPrefix(toComplete, ref.DaemonPrefix):
			partial := strings.TrimPrefix(toComplete, ref.DaemonPrefix)
			return completeEngineImages(cmd.Context(), dockerCli, ref.DaemonPrefix, partial), cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, p := range []string{ref.LayoutPrefix, ref.ArchivePrefix, ref.DaemonPrefix} {
			if toComplete != "" && strings.HasPrefix(p, toComplete) {
				out = append(out, p)
			}
		}
		if len(out) > 0 {
			return out, cobra.ShellCompDirectiveNoSpace | cobra.ShellCompDirectiveNoFileComp
		}
		return completeTags(cmd.Context(), dockerCli, root, toComplete), cobra.ShellCompDirectiveNoFileComp
	}
}

// completePathAfter lists the entries of the folder typed after prefix
// whose names start with what follows its last slash; folders end in "/"
// so that completion goes on into them. dirsOnly leaves files out.
func completePathAfter(prefix, toComplete string, dirsOnly bool) ([]cobra.Completion, cobra.ShellCompDirective) {
	path := strings.TrimPrefix(toComplete, prefix)
	dir, base := filepath.Split(path)
	read := dir
	if read == "" {
		read = "."
	}
	entries, err := os.ReadDir(read)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []cobra.Completion
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, base) || (strings.HasPrefix(name, ".") && !strings.HasPrefix(base, ".")) {
			continue
		}
		isDir := e.IsDir()
		if !isDir && e.Type()&os.ModeSymlink != 0 {
			if fi, err := os.Stat(filepath.Join(dir, name)); err == nil {
				isDir = fi.IsDir()
			}
		}
		switch {
		case isDir:
			out = append(out, prefix+dir+name+"/")
		case !dirsOnly:
			out = append(out, prefix+dir+name)
		}
	}
	return out, cobra.ShellCompDirectiveNoSpace | cobra.ShellCompDirectiveNoFileComp
}

package commands

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// flagError is every command's flag error handler. A flag error on the
// root after a word that is no command (creat -t x) is that unknown
// command: cobra parsed the flags on the root because it found no command
// to give them to. An unknown flag gets the flags that come close to it,
// as cobra does for commands.
func flagError(cmd *cobra.Command, err error) error {
	if args := cmd.Flags().Args(); cmd.HasSubCommands() && len(args) > 0 {
		return unknownCommand(cmd, args[0])
	}
	var ne *pflag.NotExistError
	if !errors.As(err, &ne) {
		return err
	}
	help := fmt.Sprintf("see '%s --help'", cmd.CommandPath())
	name := ne.GetSpecifiedName()
	if group := ne.GetSpecifiedShortnames(); group != "" {
		in := ""
		if group != name {
			in = " in -" + group
		}
		return fmt.Errorf("unknown flag -%s%s for %q (%s)", name, in, cmd.CommandPath(), help)
	}
	hint := ""
	if s := flagSuggestions(cmd, name); len(s) > 0 {
		hint = fmt.Sprintf(": did you mean --%s?", strings.Join(s, " or --"))
	}
	return fmt.Errorf("unknown flag --%s for %q%s (%s)", name, cmd.CommandPath(), hint, help)
}

// flagSuggestions lists cmd's visible flags (its own and inherited) within
// the root's suggestion distance of name, or starting with it.
func flagSuggestions(cmd *cobra.Command, name string) []string {
	maxDistance := cmd.Root().SuggestionsMinimumDistance
	if maxDistance <= 0 {
		maxDistance = 2
	}
	typed := strings.ToLower(name)
	var out []string
	seen := map[string]bool{}
	visit := func(f *pflag.Flag) {
		if f.Hidden || seen[f.Name] {
			return
		}
		seen[f.Name] = true
		if editDistance(typed, f.Name) <= maxDistance || (len(typed) > 1 && strings.HasPrefix(f.Name, typed)) {
			out = append(out, f.Name)
		}
	}
	cmd.LocalFlags().VisitAll(visit)
	cmd.InheritedFlags().VisitAll(visit)
	return out
}

// editDistance is the number of single-letter insertions, deletions,
// substitutions and swaps of neighbours that turn a into b.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}

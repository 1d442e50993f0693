package commands

import (
	"context"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/docker-imgx/docker-imgx/imagetools/registry"
	"github.com/docker/cli/cli/command"
	cliflags "github.com/docker/cli/cli/flags"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

// defaultCompletionBudget bounds what a completion may ask a registry or
// the Docker engine: a shell waits for the answer, so one that cannot be
// reached costs at most this, and then completes nothing.
const defaultCompletionBudget = 500 * time.Millisecond

// envCompletionTimeout sets another budget (a Go duration), for a registry
// far away; a value that does not parse leaves the default: completion
// says nothing.
const envCompletionTimeout = "DOCKER_IMGX_COMPLETION_TIMEOUT"

// completionBudget is the budget of one completion.
func completionBudget() time.Duration {
	if d, err := time.ParseDuration(os.Getenv(envCompletionTimeout)); err == nil && d > 0 {
		return d
	}
	return defaultCompletionBudget
}

// completeTags completes REPOSITORY:TAG from the tags of the typed
// repository, where the credentials allow listing them; nothing (and no
// message) when it cannot be read in time. Only once a ':' follows the
// repository: a registry's repositories cannot be listed.
func completeTags(ctx context.Context, dockerCli command.Cli, root *rootOptions, toComplete string) []cobra.Completion {
	i := strings.LastIndex(toComplete, ":")
	if i <= 0 || i < strings.LastIndex(toComplete, "/") || strings.Contains(toComplete, "@") {
		return nil
	}
	repo, partial := toComplete[:i], toComplete[i+1:]
	if !strings.Contains(repo, "/") && (strings.Contains(repo, ".") || repo == "localhost") {
		return nil // a registry's HOST:PORT being typed, not a Docker Hub image
	}
	loc, err := ref.Parse(repo)
	if err != nil {
		return nil
	}
	opts, err := root.registryOptions(dockerCli)
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(orBackground(ctx), completionBudget())
	defer cancel()
	tags, _, err := registry.New(opts).Tags(ctx, loc, 0)
	if err != nil {
		return nil
	}
	var out []cobra.Completion
	for tag := range tags {
		if strings.HasPrefix(tag, partial) {
			out = append(out, repo+":"+tag)
		}
	}
	slices.Sort(out)
	return out
}

// completeEngineImages completes the images of the Docker engine of the
// current context, by the names docker images shows, each after prefix;
// nothing when no engine answers in time.
func completeEngineImages(ctx context.Context, dockerCli command.Cli, prefix, partial string) []cobra.Completion {
	// A client of our own: the Docker CLI's first pings the engine for up
	// to 2 s, whatever the context says.
	api, err := command.NewAPIClientFromFlags(cliflags.NewClientOptions(), dockerCli.ConfigFile())
	if err != nil {
		return nil
	}
	defer func() { _ = api.Close() }() // nothing to report from a completion
	ctx, cancel := context.WithTimeout(orBackground(ctx), completionBudget())
	defer cancel()
	list, err := api.ImageList(ctx, client.ImageListOptions{})
	if err != nil {
		return nil
	}
	var out []cobra.Completion
	for _, img := range list.Items {
		for _, name := range img.RepoTags {
			if name != "<none>:<none>" && strings.HasPrefix(name, partial) {
				out = append(out, prefix+name)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// orBackground is ctx, or the background for a completion run without one.
func orBackground(ctx context.Context) context.Context {
	if ctx == nil {
		return context.Background()
	}
	return ctx
}

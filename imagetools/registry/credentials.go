package registry

import (
	"fmt"

	"github.com/docker/cli/cli/config/configfile"
)

// dockerHubAuthKey is the key Docker Hub credentials are stored under.
const dockerHubAuthKey = "https://index.docker.io/v1/"

// DockerConfigCredentials reads credentials from a Docker CLI configuration:
// config.json "auths", credsStore and credHelpers, identity tokens. Errors
// name the registry, never a secret.
func DockerConfigCredentials(cfg *configfile.ConfigFile) Credentials {
	return func(host string) (string, string, error) {
		key := host
		if host == "registry-1.docker.io" || host == "docker.io" || host == "index.docker.io" {
			key = dockerHubAuthKey
		}
		ac, err := cfg.GetAuthConfig(key)
		if err != nil {
			return "", "", fmt.Errorf("get credentials for %s: %w", host, err)
		}
		if ac.IdentityToken != "" {
			return "", ac.IdentityToken, nil
		}
		return ac.Username, ac.Password, nil
	}
}

package config

import (
	"bytes"
	"errors"
	"io"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/b24queue/b24queue/tasks"
)

// RegistrationHelp describes the body of a portal registration (POST
// /v1/portals, enqueue portal add): one entry of B24_PORTALS_FILE as JSON.
const RegistrationHelp = `A portal registration is one B24_PORTALS_FILE entry as JSON (or YAML), with
the portal's "name" in it or given apart (enqueue portal add NAME): exactly one of
webhook_url or oauth (portal_url, client_id, client_secret, access_token,
refresh_token, optional token_endpoint: what the app's install event
delivers), and optional rate, burst, operating_limit, operating_window
(unset ones: the workers' B24_RATE etc.). Values are sent as they are:
${NAME} references belong to the portals file only.`

// MaxRegistration bounds the size of a portal registration.
const MaxRegistration = 64 << 10

// Fleet holds the worker settings that whoever administers portals
// (enqueue portal) must read as the workers do.
type Fleet struct {
	// InsecureHTTPHosts as Worker.InsecureHTTPHosts: what a registration
	// may reach over plain http:// besides loopback.
	InsecureHTTPHosts []string
	// PortalReplicas as Worker.PortalReplicas: how many live workers run
	// a portal's queue (for the owners a status shows).
	PortalReplicas int
}

// LoadFleet reads B24_INSECURE_HTTP_HOSTS and WORKER_PORTAL_REPLICAS from
// the environment through getenv, with the workers' defaults and rules; a
// bad value is a *UsageError.
func LoadFleet(getenv func(string) string) (Fleet, error) {
	src := source{lookup: func(k string) (string, bool) {
		v := getenv(k)
		return v, v != ""
	}}
	p := &problems{}
	f := Fleet{InsecureHTTPHosts: insecureHTTPHosts(src), PortalReplicas: portalReplicas(src, p)}
	if err := p.err(); err != nil {
		return Fleet{}, err
	}
	return f, nil
}

// insecureHTTPHosts reads B24_INSECURE_HTTP_HOSTS: lower-case host names.
func insecureHTTPHosts(src source) []string {
	v, _ := src.value(sInsecureHTTP)
	var out []string
	for _, h := range strings.Split(v, ",") {
		if h = strings.ToLower(strings.TrimSpace(h)); h != "" {
			out = append(out, h)
		}
	}
	return out
}

// portalReplicas reads WORKER_PORTAL_REPLICAS.
func portalReplicas(src source, p *problems) int {
	n, name := intSetting(src, sReplicas, p)
	if name != "" && n < 0 {
		p.addf("%s %d: must be 0 (every worker) or more", name, n)
	}
	return n
}

// ParsePortal validates a portal registration named name (see
// RegistrationHelp) by the rules of the portals file, with def for the
// limits it leaves unset and httpHosts as B24_INSECURE_HTTP_HOSTS. A
// problem returns a *UsageError listing every one, without any secret of
// data.
func ParsePortal(name string, data []byte, def Limits, httpHosts []string) (Portal, error) {
	p := &problems{httpHosts: httpHosts}
	var reg struct {
		Name       string `yaml:"name"`
		filePortal `yaml:",inline"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(&reg)
	switch {
	case name == "":
		name = reg.Name
	case reg.Name != "" && reg.Name != name:
		p.addf("portal %s: the body names another portal, %q", name, reg.Name)
	}
	field := "portal " + name
	if !tasks.ValidPortalName(name) {
		p.addf("%s: portal name %q must match %s", field, name, tasks.PortalNamePattern)
	}
	fp := reg.filePortal
	switch {
	case errors.Is(err, io.EOF):
		p.addf("%s: the body is empty; it needs webhook_url or oauth", field)
	case err != nil:
		for _, line := range yamlProblems(err) {
			p.addf("%s: %s", field, line)
		}
	case envRefRE.Match(data):
		p.addf("%s: ${NAME} references are for B24_PORTALS_FILE only; send the value itself", field)
	default:
		noEnv := func(string) string { return "" }
		pt := filePortalToPortal(name, field, &fp, def, noEnv, p)
		if err := p.err(); err != nil {
			return Portal{}, err
		}
		return pt, nil
	}
	return Portal{}, p.err()
}

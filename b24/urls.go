package b24

import (
	"net"
	"strings"
)

// IsLoopbackHost reports whether host, without a port, is "localhost" (any
// case) or a loopback IP address (127.0.0.0/8, ::1). An IPv6 address may
// come in brackets, as in a URL ("[::1]"). The empty host (every interface)
// is not loopback. Plain http:// portal URLs are accepted for loopback hosts
// only, and the worker's side port may listen without credentials only on
// one.
func IsLoopbackHost(host string) bool {
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// WebhookSecret returns the SECRET of a webhook URL
// https://PORTAL/rest/USER_ID/SECRET/: the path segment two after "rest".
// It returns "" when there is none. It does not validate the URL, so that
// callers can scrub the secret from messages about a URL that is invalid.
func WebhookSecret(rawURL string) string {
	segs := strings.Split(rawURL, "/")
	for i, s := range segs {
		if s == "rest" && i+2 < len(segs) {
			return segs[i+2]
		}
	}
	return ""
}

package b24

import "testing"

func TestIsLoopbackHost(t *testing.T) {
	t.Parallel()
	for host, want := range map[string]bool{
		"localhost": true, "LocalHost": true, "127.0.0.1": true, "127.3.4.5": true, "::1": true, "[::1]": true,
		"": false, "0.0.0.0": false, "::": false, "[::]": false, "10.0.0.5": false, "example.com": false,
		"localhost.example.com": false, "2001:db8::1": false,
	} {
		if got := IsLoopbackHost(host); got != want {
			t.Errorf("IsLoopbackHost(%q) = %t, want %t", host, got, want)
		}
	}
}

func TestWebhookSecret(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]string{
		"https://acme.bitrix24.ru/rest/1/s3cret/": "s3cret",
		"https://acme.bitrix24.ru/rest/1/s3cret":  "s3cret",
		"http://127.0.0.1:8090/rest/12/abc/":      "abc",
		"not a url /rest/1/x y/":                  "x y",
		"https://acme.bitrix24.ru/rest/1/":        "",
		"https://acme.bitrix24.ru/rest/1":         "",
		"https://acme.bitrix24.ru/":               "",
		"":                                        "",
	} {
		if got := WebhookSecret(raw); got != want {
			t.Errorf("WebhookSecret(%q) = %q, want %q", raw, got, want)
		}
	}
}

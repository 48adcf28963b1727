package config_test

import (
	"errors"
	"fmt"

	"github.com/b24queue/b24queue/internal/config"
)

func ExampleLoadWorker() {
	env := map[string]string{
		"B24_WEBHOOK_URL": "https://acme.bitrix24.ru/rest/1/SECRETCODE/",
		"B24_RATE":        "5",
	}
	w, err := config.LoadWorker([]string{"--concurrency", "4"}, func(k string) string { return env[k] })
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(w.Concurrency, w.Portals[0])
	// Output: 4 portal default (webhook https://acme.bitrix24.ru/rest/1/***/; rate 5/s, burst 50, operating 8m0s per 10m0s)
}

func ExampleUsageError() {
	env := map[string]string{
		"B24_WEBHOOK_URL": "http://acme.bitrix24.ru/rest/1/SECRETCODE/",
		"WORKER_LISTEN":   "0.0.0.0:8080",
	}
	_, err := config.LoadWorker(nil, func(k string) string { return env[k] })
	var ue *config.UsageError
	if errors.As(err, &ue) {
		for _, p := range ue.Problems {
			fmt.Println(p)
		}
	}
	// Output:
	// WORKER_LISTEN 0.0.0.0:8080 is not loopback: set MONITOR_USER and MONITOR_PASSWORD
	// B24_WEBHOOK_URL http://acme.bitrix24.ru/rest/1/***/: must be https:// (http:// is accepted for loopback hosts only: 127.0.0.0/8, ::1, localhost; more with B24_INSECURE_HTTP_HOSTS)
}

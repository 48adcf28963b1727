package config

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/b24queue/b24queue/b24"
	"github.com/b24queue/b24queue/internal/cliflag"
	"github.com/b24queue/b24queue/tasks"
)

// Worker is the configuration of one worker process. LoadWorker returns it
// validated and with every default applied.
type Worker struct {
	// Redis is where the queue, limiter state, import state and tokens live
	// (REDIS_URL / --redis-url, REDIS_CLUSTER_ADDRS).
	Redis Redis
	// Portals are the portals served, sorted by name: those of the portals
	// file (B24_PORTALS_FILE / --portals-file) and the portal "default" of
	// B24_WEBHOOK_URL / --webhook-url. At least one, unless
	// RegisteredOnly.
	Portals []Portal
	// RegisteredOnly lets the worker start without a portal of its own
	// and serve only the portals registered at run time (POST /v1/portals)
	// (WORKER_REGISTERED_ONLY / --registered-only, default false). Every
	// worker serves registered portals besides its own in any case.
	RegisteredOnly bool
	// PortalReplicas is how many live workers run the queue of each portal
	// that has work (WORKER_PORTAL_REPLICAS / --portal-replicas, default 2;
	// 0: every worker that can). The others hold nothing for that portal;
	// a worker that dies is replaced within seconds. >= 0.
	PortalReplicas int
	// InsecureHTTPHosts are portal hosts (lower case) that may be reached
	// over plain http:// besides loopback: B24_INSECURE_HTTP_HOSTS, comma
	// separated, default none. Meant for the simulator in docker-compose,
	// where it is not on the worker's loopback; never for a real portal.
	InsecureHTTPHosts []string
	// Defaults are the limits of a portal that does not set its own:
	// B24_RATE / --rate (2), B24_BURST / --burst (50), B24_OPERATING_LIMIT /
	// --operating-limit (480s), B24_OPERATING_WINDOW / --operating-window (10m).
	Defaults Limits
	// Timeout is the HTTP timeout of one REST call (B24_TIMEOUT / --timeout,
	// default 75s: longer than the portal's own 60 s cap on a cloud request,
	// so a slow batch is not given up while it still runs). > 0.
	Timeout time.Duration
	// RequestLimit is how long a create request may still run at the portal
	// after it was sent (B24_REQUEST_LIMIT / --request-limit, default 65s:
	// the portal's 60 s cap plus a margin). After an attempt whose outcome is
	// unknown, the next one looks the object up only once this has passed,
	// so a request the portal still runs is not missed. > 0.
	RequestLimit time.Duration
	// Concurrency is the asynq concurrency of this process
	// (WORKER_CONCURRENCY / --concurrency, default 10). >= 1.
	Concurrency int
	// Listen is the address of the HTTP side port (WORKER_LISTEN / --listen,
	// default 127.0.0.1:8080). Empty means off: --listen= or
	// WORKER_LISTEN=off (or WORKER_LISTEN set to the empty string when loaded
	// with LoadWorkerLookup). A non-loopback address requires MonitorUser
	// and MonitorPassword.
	Listen string
	// MonitorUser and MonitorPassword are the basic-auth credentials of the
	// dashboard and enqueue API (MONITOR_USER, MONITOR_PASSWORD; no flags, so
	// the password stays out of the process list; default none). Both or
	// neither are set. MonitorPassword is a secret.
	MonitorUser, MonitorPassword string
	// ShutdownTimeout bounds how long in-flight tasks may run after
	// SIGTERM/SIGINT before they go back to the queue
	// (WORKER_SHUTDOWN_TIMEOUT / --shutdown-timeout, default 30s). > 0.
	ShutdownTimeout time.Duration
	// Batch lets the worker combine calls into Bitrix24 batch requests
	// (B24_BATCH / --batch, default true; 0/false/no/off turn it off).
	Batch bool
	// LogLevel is debug, info, warn or error, lower case
	// (LOG_LEVEL / --log-level, default info). See Level.
	LogLevel string
}

// Level returns LogLevel as a slog.Level (info for an unknown value, which
// LoadWorker never returns).
func (w Worker) Level() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(w.LogLevel)); err != nil {
		return slog.LevelInfo
	}
	return l
}

// Portal returns the portal named name.
func (w Worker) Portal(name string) (Portal, bool) {
	for _, p := range w.Portals {
		if p.Name == name {
			return p, true
		}
	}
	return Portal{}, false
}

// String summarises the configuration without any secret.
func (w Worker) String() string {
	names := make([]string, len(w.Portals))
	for i, p := range w.Portals {
		names[i] = p.Name
	}
	auth := "off"
	if w.MonitorUser != "" {
		auth = "user " + w.MonitorUser
	}
	return fmt.Sprintf("redis %s; portals %s; concurrency %d; listen %q (auth %s); timeout %s; request limit %s; shutdown timeout %s; batch %t; log %s",
		w.Redis, strings.Join(names, ","), w.Concurrency, w.Listen, auth, w.Timeout, w.RequestLimit, w.ShutdownTimeout, w.Batch, w.LogLevel)
}

// LogValue makes slog print the redacted String form.
func (w Worker) LogValue() slog.Value { return slog.StringValue(w.String()) }

// setting is one configuration value with its variable, flag and default.
type setting struct {
	env, flag, def, help string
	isBool               bool
}

// The settings of the worker, in usage order. Secrets have no default and
// no flag (MONITOR_PASSWORD) or a default of none (webhook URL), so the usage
// text never shows one.
var (
	sRedisURL     = &setting{env: "REDIS_URL", flag: "redis-url", def: DefaultRedisURL, help: "Redis URI: redis://, rediss://, redis-socket://, redis-sentinel://HOST:PORT,...?master=NAME"}
	sCluster      = &setting{env: "REDIS_CLUSTER_ADDRS", help: "Redis Cluster seed nodes, comma separated host:port; wins over REDIS_URL"}
	sWebhook      = &setting{env: "B24_WEBHOOK_URL", flag: "webhook-url", help: "inbound webhook https://PORTAL/rest/USER_ID/SECRET/; defines portal \"default\""}
	sInsecureHTTP = &setting{env: "B24_INSECURE_HTTP_HOSTS", help: "comma-separated portal hosts allowed over plain http:// besides loopback (the simulator in docker-compose); never a real portal"}
	sPortalsFile  = &setting{env: "B24_PORTALS_FILE", flag: "portals-file", help: "YAML file with several portals (format below)"}
	sRate         = &setting{env: "B24_RATE", flag: "rate", def: "2", help: "requests per second a portal drains (2 standard plans, 5 Enterprise)"}
	sBurst        = &setting{env: "B24_BURST", flag: "burst", def: "50", help: "bucket size before a portal answers 503 (50 standard, 250 Enterprise)"}
	sOpLimit      = &setting{env: "B24_OPERATING_LIMIT", flag: "operating-limit", def: "480s", help: "per-method execution budget in the rolling window"}
	sOpWindow     = &setting{env: "B24_OPERATING_WINDOW", flag: "operating-window", def: "10m", help: "that rolling window; the wait on a 429 without a known reset time"}
	sTimeout      = &setting{env: "B24_TIMEOUT", flag: "timeout", def: "75s", help: "HTTP timeout of one REST call (above the portal's 60 s cap on a request)"}
	sRequestLimit = &setting{env: "B24_REQUEST_LIMIT", flag: "request-limit", def: "65s", help: "how long a create request may still run at the portal after it was sent (the portal's 60 s cap plus a margin); a lookup after a lost answer waits for it"}
	sConcurrency  = &setting{env: "WORKER_CONCURRENCY", flag: "concurrency", def: "10", help: "tasks this process runs at once per portal (each portal has its own worker slots)"}
	sListen       = &setting{env: "WORKER_LISTEN", flag: "listen", def: "127.0.0.1:8080", help: "HTTP side port (dashboard, metrics, health, enqueue API); empty or \"off\": off; a second worker on the same machine needs another port, e.g. 127.0.0.1:8081"}
	sMonUser      = &setting{env: "MONITOR_USER", help: "basic-auth user of the dashboard and enqueue API"}
	sMonPassword  = &setting{env: "MONITOR_PASSWORD", help: "its password (required with MONITOR_USER and on a non-loopback WORKER_LISTEN)"}
	sShutdown     = &setting{env: "WORKER_SHUTDOWN_TIMEOUT", flag: "shutdown-timeout", def: "30s", help: "how long in-flight tasks may finish after SIGTERM/SIGINT"}
	sBatch        = &setting{env: "B24_BATCH", flag: "batch", def: "true", help: "combine calls into batch requests (0/false: off)", isBool: true}
	sLogLevel     = &setting{env: "LOG_LEVEL", flag: "log-level", def: "info", help: "debug, info, warn or error"}
	sRegistered   = &setting{env: "WORKER_REGISTERED_ONLY", flag: "registered-only", def: "false", help: "start without B24_WEBHOOK_URL or B24_PORTALS_FILE and serve only portals registered at run time (POST /v1/portals, enqueue portal add)", isBool: true}
	sReplicas     = &setting{env: "WORKER_PORTAL_REPLICAS", flag: "portal-replicas", def: "2", help: "how many live workers run the queue of each portal that has work (0: every worker); the others hold nothing for it"}
	workerSetting = []*setting{sRedisURL, sCluster, sWebhook, sInsecureHTTP, sPortalsFile, sRegistered, sRate, sBurst, sOpLimit, sOpWindow,
		sTimeout, sRequestLimit, sConcurrency, sReplicas, sListen, sMonUser, sMonPassword, sShutdown, sBatch, sLogLevel}
)

// WorkerUsage returns the help text of the worker: every flag and variable
// with its default, and the portals file format. It shows defaults only,
// never the current environment, so it holds no secret.
func WorkerUsage() string {
	var b strings.Builder
	b.WriteString("Usage: worker [flags]\n       worker healthcheck [--listen ADDR] [--timeout D]\n\n")
	b.WriteString("Runs Bitrix24 department and workplace tasks from the Redis queue.\n")
	b.WriteString("Every setting is an environment variable; a flag (--flag VALUE or --flag=VALUE)\n")
	b.WriteString("overrides it. 'worker healthcheck' asks the side port of a running worker\n")
	b.WriteString("(WORKER_LISTEN) for /healthz and exits 0 when it answers 200, 1 otherwise: a\n")
	b.WriteString("container healthcheck that needs no curl.\n\n")
	for _, s := range workerSetting {
		name := s.env
		if s.flag != "" {
			name = "--" + s.flag + ", " + s.env
		}
		def := s.def
		if def == "" {
			def = "none"
		}
		fmt.Fprintf(&b, "  %s (default %s)\n      %s\n", name, def, s.help)
	}
	b.WriteString("\n")
	b.WriteString(PortalsFileHelp)
	b.WriteString("\n")
	return b.String()
}

// flagValue is a string flag that remembers whether it was given; isBool
// lets "--batch" stand alone.
type flagValue struct {
	v      string
	set    bool
	isBool bool
}

func (f *flagValue) String() string     { return f.v }
func (f *flagValue) Set(s string) error { f.v, f.set = s, true; return nil }
func (f *flagValue) IsBoolFlag() bool   { return f.isBool }

// source resolves settings: a given flag, else a set environment variable,
// else the default. name is what messages call the value's origin.
type source struct {
	flags  map[*setting]*flagValue
	lookup func(string) (string, bool)
}

func (s source) get(st *setting) (value, name string, set bool) {
	if f := s.flags[st]; f != nil && f.set {
		return f.v, "--" + st.flag, true
	}
	if v, ok := s.lookup(st.env); ok {
		return v, st.env, true
	}
	return st.def, st.env, false
}

// value is get without an empty value counting as set: an empty variable
// means the default, as if unset.
func (s source) value(st *setting) (string, string) {
	v, name, _ := s.get(st)
	if v == "" {
		if f := s.flags[st]; f == nil || !f.set {
			v = st.def
		}
	}
	return strings.TrimSpace(v), name
}

// LoadWorker reads the worker configuration from the command-line arguments
// args (without the program name) and the environment through getenv; a flag
// overrides the variable of the same meaning, and an empty variable counts
// as unset. "--help" returns an error matching flag.ErrHelp (print
// WorkerUsage then). Any other problem returns a *UsageError listing all of
// them. It reads B24_PORTALS_FILE but connects to nothing.
func LoadWorker(args []string, getenv func(string) string) (Worker, error) {
	return LoadWorkerLookup(args, func(k string) (string, bool) {
		v := getenv(k)
		return v, v != ""
	})
}

// LoadWorkerLookup is LoadWorker with an os.LookupEnv-style lookup, which
// tells an empty variable from an unset one: WORKER_LISTEN set but empty
// turns the side port off, as design.md specifies. Mains should prefer it
// with os.LookupEnv.
func LoadWorkerLookup(args []string, lookup func(string) (string, bool)) (Worker, error) {
	src, rest, err := parseWorkerFlags(args, lookup)
	if err != nil {
		return Worker{}, err
	}
	p := &problems{}
	if len(rest) > 0 {
		msg := fmt.Sprintf("unexpected argument %q: worker takes flags only, or the command healthcheck (see --help)", rest[0])
		if s := cliflag.Suggest(rest[0], WorkerCommands); s != "" {
			msg += "; did you mean " + s + "?"
		}
		p.addf("%s", msg)
	}
	getenv := func(k string) string { v, _ := lookup(k); return v }
	w := Worker{}
	w.loadRedis(src, p)
	w.loadLimits(src, p)
	w.loadRun(src, p)
	w.loadSidePort(src, getenv, p)
	w.loadPortals(src, getenv, p)
	if err := p.err(); err != nil {
		return Worker{}, err
	}
	return w, nil
}

// parseWorkerFlags parses args into a source of settings (flags over the
// environment read through lookup) and returns the positional arguments.
// Flags follow the commands' one style (package cliflag).
func parseWorkerFlags(args []string, lookup func(string) (string, bool)) (source, []string, error) {
	fs := cliflag.NewFlagSet("worker")
	src := source{flags: map[*setting]*flagValue{}, lookup: lookup}
	for _, st := range workerSetting {
		if st.flag == "" {
			continue
		}
		fv := &flagValue{isBool: st.isBool}
		src.flags[st] = fv
		fs.Var(fv, st.flag, st.help)
	}
	rest, err := cliflag.Parse(fs, args)
	if err != nil {
		if errors.Is(err, cliflag.ErrHelp) {
			return source{}, nil, flag.ErrHelp
		}
		return source{}, nil, &UsageError{Problems: []string{err.Error() + " (see --help)"}}
	}
	return src, rest, nil
}

// WorkerCommands are the words the worker takes besides flags.
var WorkerCommands = []string{"healthcheck"}

// loadRedis reads the Redis settings.
func (w *Worker) loadRedis(src source, p *problems) {
	var redisName string
	w.Redis.URL, redisName = src.value(sRedisURL)
	cl, _ := src.value(sCluster)
	w.Redis.ClusterAddrs = splitAddrs(cl)
	validateRedis(w.Redis, redisName, p)
}

// loadLimits reads the default portal limits.
func (w *Worker) loadLimits(src source, p *problems) {
	var names limitNames
	w.Defaults.Rate, names.rate = floatSetting(src, sRate, p)
	w.Defaults.Burst, names.burst = intSetting(src, sBurst, p)
	w.Defaults.OperatingLimit, names.opLimit = durationSetting(src, sOpLimit, p)
	w.Defaults.OperatingWindow, names.opWindow = durationSetting(src, sOpWindow, p)
	validateLimits(w.Defaults, names, p)
}

// loadRun reads the timeouts, the concurrency, batch mode and the log level.
func (w *Worker) loadRun(src source, p *problems) {
	var n string
	if w.Timeout, n = durationSetting(src, sTimeout, p); n != "" && w.Timeout <= 0 {
		p.addf("%s %s: must be > 0", n, w.Timeout)
	}
	if w.RequestLimit, n = durationSetting(src, sRequestLimit, p); n != "" && w.RequestLimit <= 0 {
		p.addf("%s %s: must be > 0", n, w.RequestLimit)
	}
	if w.ShutdownTimeout, n = durationSetting(src, sShutdown, p); n != "" && w.ShutdownTimeout <= 0 {
		p.addf("%s %s: must be > 0", n, w.ShutdownTimeout)
	}
	if w.Concurrency, n = intSetting(src, sConcurrency, p); n != "" && w.Concurrency < 1 {
		p.addf("%s %d: must be at least 1", n, w.Concurrency)
	}
	w.PortalReplicas = portalReplicas(src, p)

	bv, bn := src.value(sBatch)
	var ok bool
	if w.Batch, ok = parseBool(bv); !ok {
		p.addf("%s %q: must be true or false (1/0, yes/no, on/off)", bn, bv)
	}
	lv, ln := src.value(sLogLevel)
	w.LogLevel = strings.ToLower(lv)
	switch w.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		p.addf("%s %q: must be debug, info, warn or error", ln, lv)
	}
}

// loadSidePort reads the side port's address and credentials: a port that
// is not loopback needs both.
func (w *Worker) loadSidePort(src source, getenv func(string) string, p *problems) {
	w.MonitorUser = getenv(sMonUser.env)
	w.MonitorPassword = getenv(sMonPassword.env)
	p.secret(w.MonitorPassword)
	if (w.MonitorUser == "") != (w.MonitorPassword == "") {
		p.addf("MONITOR_USER and MONITOR_PASSWORD must be set together")
	}
	listen, listenName, listenSet := src.get(sListen)
	listen = strings.TrimSpace(listen)
	if listen == "" && !listenSet {
		listen = sListen.def
	}
	if strings.EqualFold(listen, "off") {
		listen = ""
	}
	w.Listen = listen
	if listen != "" {
		if reason := checkListen(listen); reason != "" {
			p.addf("%s %s: %s", listenName, listen, reason)
		} else if host, _, _ := net.SplitHostPort(listen); !b24.IsLoopbackHost(host) &&
			(w.MonitorUser == "" || w.MonitorPassword == "") {
			p.addf("%s %s is not loopback: set MONITOR_USER and MONITOR_PASSWORD", listenName, listen)
		}
	}
}

// loadPortals reads the portals: B24_WEBHOOK_URL's DefaultPortal and those
// of B24_PORTALS_FILE, sorted by name, and the hosts allowed plain http://.
func (w *Worker) loadPortals(src source, getenv func(string) string, p *problems) {
	w.InsecureHTTPHosts = insecureHTTPHosts(src)
	p.httpHosts = w.InsecureHTTPHosts
	hook, hookName := src.value(sWebhook)
	if hook != "" {
		w.Portals = append(w.Portals, Portal{
			Name:       tasks.DefaultPortal,
			WebhookURL: webhookProblem(hook, hookName, p),
			Limits:     w.Defaults,
		})
	}
	file, fileName := src.value(sPortalsFile)
	if file != "" {
		for _, fp := range readPortalsFile(file, fileName, w.Defaults, getenv, p) {
			if fp.Name == tasks.DefaultPortal && hook != "" {
				p.addf("%s %s: portals.%s is also defined by %s; remove one", fileName, file, tasks.DefaultPortal, hookName)
				continue
			}
			w.Portals = append(w.Portals, fp)
		}
	}
	rv, rn := src.value(sRegistered)
	var ok bool
	if w.RegisteredOnly, ok = parseBool(rv); !ok {
		p.addf("%s %q: must be true or false (1/0, yes/no, on/off)", rn, rv)
	}
	if hook == "" && file == "" && !w.RegisteredOnly {
		p.addf("no portal configured: set B24_WEBHOOK_URL or B24_PORTALS_FILE (--webhook-url, --portals-file), or WORKER_REGISTERED_ONLY=true to serve only portals registered at run time")
	}
	sortPortals(w.Portals)
}

func sortPortals(ps []Portal) {
	for i := 1; i < len(ps); i++ {
		for j := i; j > 0 && ps[j].Name < ps[j-1].Name; j-- {
			ps[j], ps[j-1] = ps[j-1], ps[j]
		}
	}
}

// checkListen validates a listen address host:port (host may be empty for
// every interface; port 0..65535).
func checkListen(a string) string {
	_, port, err := net.SplitHostPort(a)
	if err != nil {
		return "must be host:port, e.g. 127.0.0.1:8080"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return "port must be a number from 0 to 65535"
	}
	return ""
}

func parseBool(s string) (bool, bool) {
	switch strings.ToLower(s) {
	case "1", "t", "true", "yes", "y", "on":
		return true, true
	case "0", "f", "false", "no", "n", "off":
		return false, true
	}
	return false, false
}

// floatSetting parses a number. An unparseable one is reported here, and
// the returned name is "" so that range checks skip it.
func floatSetting(src source, st *setting, p *problems) (float64, string) {
	v, name := src.value(st)
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		p.addf("%s %q: must be a number", name, v)
		return 0, ""
	}
	return f, name
}

// intSetting parses a whole number; see floatSetting for a bad one.
func intSetting(src source, st *setting, p *problems) (int, string) {
	v, name := src.value(st)
	n, err := strconv.Atoi(v)
	if err != nil {
		p.addf("%s %q: must be a whole number", name, v)
		return 0, ""
	}
	return n, name
}

// durationSetting parses a Go duration (480s, 10m, 1h30m); see floatSetting
// for a bad one.
func durationSetting(src source, st *setting, p *problems) (time.Duration, string) {
	v, name := src.value(st)
	d, err := time.ParseDuration(v)
	if err != nil {
		p.addf("%s %q: must be a duration such as 30s, 480s or 10m", name, v)
		return 0, ""
	}
	return d, name
}

// Command redis-gateway is an HTTP/JSON gateway to Redis: cache, sessions,
// rate limits and counters over plain HTTP, with probes and metrics.
package main

import (
	"context"
	"crypto/tls"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"

	"github.com/joho/godotenv"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel/trace"

	"github.com/redis-gateway/redis-gateway/access"
	"github.com/redis-gateway/redis-gateway/handlers"
	"github.com/redis-gateway/redis-gateway/middleware"
	"github.com/redis-gateway/redis-gateway/store"
)

//go:embed openapi.yaml
var openAPISpec []byte

// version is set at build time with -ldflags "-X main.version=…".
var version = ""

func main() {
	// A missing .env is normal; variables already set always win.
	if err := godotenv.Load(); err != nil && !errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(os.Stderr, "redis-gateway: .env: %v\n", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Environ, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "redis-gateway: %v\n", err)
		stop()
		os.Exit(1)
	}
}

// run is the whole program: main only supplies the process's context,
// arguments, environment (getenv reads a variable, environ lists them all)
// and output.
func run(ctx context.Context, args []string, getenv func(string) string, environ func() []string, stdout, stderr io.Writer) error {
	if len(args) > 1 {
		switch args[1] {
		case "healthcheck":
			return healthcheck(ctx, args[2:], getenv, stderr)
		case "version":
			fmt.Fprintf(stdout, "redis-gateway %s %s\n", buildVersion(), runtime.Version())
			return nil
		}
	}
	fs := flag.NewFlagSet("redis-gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: redis-gateway [-dev] [-addr host:port] | healthcheck [--live] [--url URL] [--timeout D] [--insecure] | version\n\n"+
			"Configuration comes from the environment and .env; see .env.example.\n\n")
		fs.PrintDefaults()
	}
	dev := fs.Bool("dev", false, "development mode: embedded in-memory Redis, no auth, text logs; listens on 127.0.0.1 unless -addr, HTTP_ADDR or HOST says otherwise")
	addr := fs.String("addr", "", "host:port to listen on, over HTTP_ADDR, HOST and PORT (such as 0.0.0.0:8080)")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("unknown command %q", fs.Arg(0))
	}

	cfg, err := loadConfig(getenv, *dev)
	if err != nil {
		return err
	}
	if *addr != "" {
		if _, _, err := net.SplitHostPort(*addr); err != nil {
			return fmt.Errorf("-addr %q: want host:port, such as 127.0.0.1:8080 or :8080", *addr)
		}
		cfg.Addr = *addr
	}
	logger, closeLog := newLogger(cfg, stdout)
	defer closeLog()
	// go-redis has one logger per process (held atomically); the process runs
	// one gateway, so its lines join ours.
	store.LogClientTo(logger)
	for _, l := range lookalikes(environ()) {
		logger.Warn("variable not read by the gateway: is it misspelt?", "variable", l.name, "did_you_mean", l.known)
	}
	limit, stopPacing := applyGC(cfg.GC, containerMemoryLimit())
	defer stopPacing()
	gogc, gomemlimit := "off", "off"
	switch {
	case cfg.GC.Percent == 0:
		gogc = fmt.Sprintf("paced, %d to %d", minGOGC, maxGOGC)
	case cfg.GC.Percent > 0:
		gogc = strconv.Itoa(cfg.GC.Percent)
	}
	if limit != math.MaxInt64 {
		gomemlimit = fmt.Sprintf("%dMiB", limit>>20)
	}
	logger.Info("garbage collector", "gogc", gogc, "gomemlimit", gomemlimit)
	return serve(ctx, cfg, *dev, logger, stdout)
}

func serve(ctx context.Context, cfg config, dev bool, logger *slog.Logger, stdout io.Writer) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace:   "redis_gateway",
			Name:        "build_info",
			Help:        "Always 1; the labels say which build is running.",
			ConstLabels: prometheus.Labels{"version": buildVersion(), "goversion": runtime.Version()},
		}, func() float64 { return 1 }),
	)

	var tp trace.TracerProvider // nil: tracing off
	if cfg.TracesProtocol != "" {
		sdk, err := newTracerProvider(ctx, cfg.TracesProtocol)
		if err != nil {
			return err
		}
		defer func() {
			// Send what is still batched; a collector that is away does
			// not hold the exit for long.
			flushCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := sdk.Shutdown(flushCtx); err != nil {
				logger.Warn("tracing: spans not sent at exit", "error", err)
			}
		}()
		tp = sdk
		logger.Info("tracing on: spans go to the OTLP endpoint", "protocol", cfg.TracesProtocol)
	}

	cfg.Redis.Logger = logger
	cfg.Redis.Registry = reg
	cfg.Redis.TracerProvider = tp
	st, err := store.New(cfg.Redis)
	if err != nil {
		return err
	}
	// gs.Shutdown closes the store after the last request; a return before
	// a shutdown closes it here.
	gs := newGatewayServer(st.Close, cfg.ShutdownDelay, cfg.ShutdownTimeout, logger)
	defer gs.closeStore()

	tokensFile := cfg.TokensFile
	if cfg.AuthDisabled {
		tokensFile = ""
	}
	// loadConfig read and checked the file; the watcher reads it from now on.
	tokens, err := access.NewTokens(cfg.Tokens, tokensFile, cfg.tokensFileData, logger)
	if err != nil {
		return fmt.Errorf("GATEWAY_TOKENS_FILE: %w", err)
	}
	// SIGHUP re-reads the tokens file at once; polling sees every change
	// within tokensPollInterval anyway.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	watchCtx, stopWatching := context.WithCancel(ctx)
	defer stopWatching()
	go tokens.Watch(watchCtx, tokensPollInterval, hup)

	h := handlers.New(handlers.Config{
		Store:          st,
		Logger:         logger,
		Registry:       reg,
		TracerProvider: tp,
		TokenSet:       tokens.Current,
		MetricsToken:   cfg.MetricsToken,
		CORSOrigins:    cfg.CORSOrigins,
		AuthDisabled:   cfg.AuthDisabled,
		MaxBodyBytes:   cfg.MaxBodyBytes,
		MaxJSONDepth:   cfg.MaxJSONDepth,
		RequestTimeout: cfg.RequestTimeout,
		TTLs: handlers.TTLs{
			CacheDefault: cfg.CacheDefaultTTL,
			Session:      cfg.SessionTTL,
			Max:          cfg.MaxTTL,
		},
		RateLimitFailOpen: cfg.RateLimitFailOpen,
		Draining:          gs.Draining,
		ReadyWithoutRedis: cfg.Readiness == "process",
		OpenAPI:           openAPISpec,
		MaxSubscribers:    cfg.MaxSubscribers,
		SubscriberBuffer:  cfg.SubscribeBuffer,
		Heartbeat:         cfg.SubscribeHeartbeat,
		LockMaxWait:       cfg.LockMaxWait,
		LockMaxWaiters:    cfg.LockMaxWaiters,
		CacheLeaseMaxWait: cfg.CacheLeaseMaxWait,
		Stop:              gs.stop, // closed when shutdown begins, ending event streams
		Streams:           &gs.streams,
	})

	if cfg.PprofAddr != "" {
		stopPprof, err := servePprof(cfg.PprofAddr, logger)
		if err != nil {
			return err
		}
		defer stopPprof()
	}

	// Listen before serving, so a taken port fails here, at once.
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (another process may hold the port: set PORT or HTTP_ADDR)", cfg.Addr, err)
	}
	scheme := "http"
	var tlsConfig *tls.Config
	if cfg.TLSCertFile != "" {
		certs, err := newCertReloader(cfg.TLSCertFile, cfg.TLSKeyFile, cfg.TLSCertCheckInterval, logger)
		if err != nil {
			_ = ln.Close()
			return err
		}
		tlsConfig = listenerTLS(certs)
		scheme = "https"
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		// Headers and body must arrive within this; net/http lifts it once the
		// body is read, so it never cuts a slow handler or an event stream short.
		ReadTimeout:    readHeaderTimeout + cfg.RequestTimeout,
		IdleTimeout:    120 * time.Second,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	if dev {
		fmt.Fprintf(stdout, "\n  redis-gateway DEVELOPMENT MODE on %s://%s\n"+
			"  embedded in-memory Redis (data is lost on exit), authentication OFF.\n"+
			"  Never run -dev in production.\n\n", scheme, displayAddr(ln.Addr()))
	}
	if cfg.AuthDisabled && !dev {
		logger.Warn("authentication is off (GATEWAY_AUTH=none): every data route is open")
	}

	logger.Info("listening", "addr", ln.Addr().String(), "scheme", scheme, "redis", st.Addr(), "version", buildVersion())
	served := gs.Serve(srv, ln, tlsConfig)
	// Serve first: probes must answer while Redis is slow or down.
	go func() {
		pingCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if err := st.Ping(pingCtx); err != nil && ctx.Err() == nil {
			logger.Warn("redis is not reachable yet; /readyz answers 503 until it is", "redis", st.Addr(), "error", err)
			return
		}
		// Scoped tokens on /redis need Redis's description of its
		// commands; read it now rather than on the first such request.
		if err := st.LoadCommandInfo(pingCtx); err != nil && ctx.Err() == nil {
			logger.Info("redis does not describe its commands yet; key-restricted tokens are checked once it does", "error", err)
		}
	}()
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	return gs.Shutdown(context.Background())
}

// readHeaderTimeout bounds how long a client may take to send its headers.
const readHeaderTimeout = 10 * time.Second

// tokensPollInterval is how often the tokens file is re-read: a rotated token
// is in force within it, or at once on SIGHUP.
const tokensPollInterval = 500 * time.Millisecond

// newLogger returns the process's logger and the function that writes out
// what it still holds.
func newLogger(cfg config, w io.Writer) (*slog.Logger, func()) {
	var buf *logBuffer
	if cfg.LogBuffer > 0 {
		buf = newLogBuffer(w, cfg.LogBuffer)
		w = buf
	}
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	var h slog.Handler = slog.NewTextHandler(w, opts) // durations as 1.5s
	if cfg.LogFormat == "json" {
		// JSON writes a time.Duration as bare nanoseconds: write the text
		// form, which says its unit, as the text handler does.
		opts.ReplaceAttr = durationText
		h = middleware.NewJSONHandler(w, opts)
	}
	if buf == nil {
		return slog.New(h), func() {}
	}
	return slog.New(accessBatches{h, buf}), func() { _ = buf.Close() }
}

func durationText(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// displayAddr turns a wildcard listen address into one a browser can open.
func displayAddr(a net.Addr) string {
	if tcp, ok := a.(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
		return fmt.Sprintf("localhost:%d", tcp.Port)
	}
	return a.String()
}

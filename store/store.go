// Package store is everything that speaks to Redis: building the client from a
// URL, naming keys, and the operations behind each route.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"go.opentelemetry.io/otel/trace"
)

// Options configure a Store. Zero values take go-redis defaults unless noted.
type Options struct {
	URL          string // redis://, rediss:// or memory://
	Username     string // overrides the URL's user
	Password     string // overrides the URL's password
	PasswordFile string // read on every new connection, so a rotated secret needs no restart
	KeyPrefix    string // namespace in front of every key space

	// ClusterNodes, instead of URL, are host:port of Redis Cluster nodes to
	// discover the others from.
	ClusterNodes []string
	TLS          TLSOptions

	PoolSize        int
	MinIdleConns    int
	ConnMaxIdleTime time.Duration // negative = idle connections are kept
	DialTimeout     time.Duration
	ReadTimeout     time.Duration
	WriteTimeout    time.Duration
	MaxRetries      int // 0 = go-redis default (3); negative = no retries
	MinRetryBackoff time.Duration
	MaxRetryBackoff time.Duration

	// WriteReplicas, when above 0, makes every write wait until that many
	// replicas confirm it, for at most WriteReplicasTimeout; fewer is
	// ErrUnconfirmed.
	WriteReplicas        int
	WriteReplicasTimeout time.Duration

	// MaxReplyBytes bounds the replies the command API reads for one
	// request's round trip to a Redis node; 0 = DefaultMaxReplyBytes.
	MaxReplyBytes int64

	// NoAutoPipeline sends every command on its own round trip instead of
	// batching the single commands of concurrent requests.
	NoAutoPipeline bool

	// NearCache, when set, keeps values read by GetCacheTagged in memory,
	// invalidated by Redis's client tracking. nil = off.
	NearCache *NearCacheOptions

	Logger   *slog.Logger
	Registry prometheus.Registerer // nil = no metrics
	// TracerProvider, when set, gives every Redis command a client span,
	// a child of the request's. nil = no tracing.
	TracerProvider trace.TracerProvider
}

// Store runs the gateway's operations against one Redis deployment.
type Store struct {
	commandInfo commandTable // the command API's table, read once (commandtable.go)

	rdb     redis.UniversalClient
	cmdAPI  redis.UniversalClient // the command API's RESP2 client, to the same deployment
	aliases *scriptAliases
	keys    keys
	addr    string // redacted, for logs and errors
	closers []func() error

	// How write retries commands that never ran, and waits for replicas
	// (see retry.go and durable.go).
	retries                int
	minBackoff, maxBackoff time.Duration
	durable                durability

	hub      *hub                  // the one subscriber connection that wakes waiters (hub.go)
	ap       *redis.AutoPipeliner  // nil when auto-pipelining is off (autopipeline.go)
	apClient redis.UniversalClient // the auto-pipeliner's own client
	cmdBatch *redis.AutoPipeliner  // the command API's reads; nil when off (commandbatch.go)
	near     *nearCache            // nil when the near-cache is off (nearcache.go)
	readers  nearReaders           // where near's values are read; nil when it cannot run (tracker.go)
	errs     batchErrors           // counts the failures of batched commands
	spans    batchSpans            // traces batched commands

	leaseMetrics leaseMetrics  // cache leases (leasecache.go)
	fixedCount   fixedCounting // plain commands or the script (ratelimit.go)

	updating keyedMutex             // sessions being patched by this process
	commands *prometheus.CounterVec // command API commands by name and result; nil = no metrics
	maxReply int64                  // MAX_REPLY_BYTES (replybudget.go)
	sync     syncClock              // read-your-writes tokens (synctoken.go)
}

// New builds the client: a cluster client when ClusterNodes is set, else a
// client of the one server in URL. It does not wait for Redis: the gateway
// must start when Redis is still down, and report that on its readiness probe.
func New(opts Options) (*Store, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{keys: keys{prefix: opts.KeyPrefix}}

	var ro *redis.Options
	var host string // of the configured endpoint, for TLS server names
	rediss, embedded := false, false
	if len(opts.ClusterNodes) > 0 {
		if opts.URL != "" {
			return nil, errors.New("REDIS_URL and REDIS_CLUSTER_NODES are both set: set REDIS_URL for one server, " +
				"REDIS_CLUSTER_NODES for a cluster (with REDIS_TLS_ENABLED=true for TLS)")
		}
		if err := checkClusterPrefix(opts.KeyPrefix); err != nil {
			return nil, err
		}
		for _, n := range opts.ClusterNodes {
			if _, _, err := net.SplitHostPort(n); err != nil {
				return nil, fmt.Errorf("REDIS_CLUSTER_NODES: %q is not host:port", n)
			}
		}
		host, _, _ = net.SplitHostPort(opts.ClusterNodes[0])
		ro = &redis.Options{}
		s.addr = "cluster " + strings.Join(opts.ClusterNodes, ",")
	} else {
		u, err := url.Parse(opts.URL)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL: %s is not a URL", Redact(opts.URL))
		}
		if u.Scheme == "memory" {
			if opts.TLS.Enabled || opts.TLS.configured() {
				return nil, errors.New("REDIS_URL=memory:// takes no REDIS_TLS_* settings: the embedded Redis speaks plain text")
			}
			mr, stop, err := startMemory()
			if err != nil {
				return nil, fmt.Errorf("start in-memory redis: %w", err)
			}
			s.closers = append(s.closers, stop)
			embedded = true
			logger.Warn("using an embedded in-memory Redis: data lives only as long as this process", "addr", mr.Addr())
			u = &url.URL{Scheme: "redis", Host: mr.Addr()}
		}
		if u.Scheme != "redis" && u.Scheme != "rediss" {
			return nil, fmt.Errorf("REDIS_URL: scheme %q is not redis://, rediss:// or memory://", u.Scheme)
		}
		ro, err = redis.ParseURL(u.String())
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL: %w", errors.New(strings.ReplaceAll(err.Error(), u.String(), Redact(u.String()))))
		}
		if ro.TLSConfig != nil && ro.TLSConfig.InsecureSkipVerify { // ?skip_verify=true
			opts.TLS.InsecureSkipVerify = true
		}
		host, rediss = u.Hostname(), u.Scheme == "rediss"
		s.addr = Redact(u.String())
	}

	var cmdErrors *prometheus.CounterVec
	var cmdLatency *prometheus.HistogramVec
	if opts.Registry != nil {
		cmdErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "redis_gateway",
			Name:      "redis_command_errors_total",
			Help:      "Redis commands that failed, by command (a missing key is not a failure).",
		}, []string{"command"})
		cmdLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "redis_gateway",
			Name:      "redis_command_duration_seconds",
			Help:      "Time from sending a Redis command to its reply, by command (names outside the Redis command set are \"other\"); batched commands include their wait for the batch.",
			Buckets:   latencyBuckets,
		}, []string{"command"})
		cmdErrors.WithLabelValues("dial") // at zero from the start, so rate() sees the first failure
		if err := registerAll(opts.Registry, cmdErrors, cmdLatency); err != nil {
			return nil, fmt.Errorf("register redis metrics: %w", err)
		}
	}

	d, err := newDialer(opts.TLS, rediss, host, logger)
	if err != nil {
		return nil, err
	}
	if cmdErrors != nil {
		d.failed = func() { cmdErrors.WithLabelValues("dial").Inc() }
	}
	if err := configure(ro, opts, d); err != nil {
		return nil, err
	}

	s.retries, s.minBackoff, s.maxBackoff = max(ro.MaxRetries, 0), ro.MinRetryBackoff, ro.MaxRetryBackoff
	if ro.MaxRetries == 0 {
		s.retries = 3 // go-redis's default
	}
	if s.minBackoff == 0 {
		s.minBackoff = 8 * time.Millisecond
	}
	if s.maxBackoff == 0 {
		s.maxBackoff = 512 * time.Millisecond
	}

	if opts.WriteReplicas > 0 {
		if opts.WriteReplicasTimeout < time.Millisecond {
			return nil, errors.New("REDIS_WRITE_REPLICAS_TIMEOUT: want at least 1ms: WAIT 0 would wait forever")
		}
		s.durable = durability{replicas: opts.WriteReplicas, timeout: opts.WriteReplicasTimeout}
	}

	maxReply := opts.MaxReplyBytes
	if maxReply <= 0 {
		maxReply = DefaultMaxReplyBytes
	}
	s.maxReply = maxReply
	// The clients, and the hooks each one gets. The functions of
	// roundtrip.go are the only ones that send operations on them.
	//
	//   - s.rdb, the main client: writeHook, so a write's pipeline is sent
	//     once (retry.go); with REDIS_WRITE_REPLICAS, confirmHook on it or on
	//     each cluster node (durable.go); on a cluster, reloadHook; with
	//     metrics, errorHook and latencyHook; with tracing, its spans.
	//   - s.cmdAPI, the command API's RESP2 client with the reply budget on
	//     its connections: confirmHook and reloadHook as s.rdb; errorHook and
	//     latencyHook (registerCommandMetrics); tracing. No writeHook: send
	//     marks each write itself (guard), since the command table, not the
	//     call, says which commands write.
	//   - s.apClient, the auto-pipeliner's (enableAutoPipeline): none.
	//     runCmd counts and traces its commands one by one (batchErrors,
	//     batchSpans), and durable writes do not go through it (batched).
	//   - the command API's auto-pipeliner client (enableCommandBatching):
	//     RESP2 and the reply budget, as s.cmdAPI; on a cluster, reloadHook;
	//     no other: it carries reads only, which runBatched and sendBatch
	//     count and trace one by one.
	//   - the near-cache's invalidation client and reader (tracker.go):
	//     none. The first runs no operation, it receives the invalidations;
	//     the second only reads the values the near-cache keeps, which
	//     readTracked traces.
	var base redis.Options                // the single server's options before go-redis fills in its defaults
	var clusterBase *redis.ClusterOptions // the same for a cluster; nil for one server
	if len(opts.ClusterNodes) > 0 {
		co := clusterOptions(opts.ClusterNodes, ro)
		clusterBase = new(*co)
		s.cmdAPI = newClusterCommandClient(*co, maxReply)
		cc := newClusterClient(*co)
		cc.AddHook(reloadHook{cc})
		if s.durable.replicas > 0 {
			hook := func(node *redis.Client) { node.AddHook(confirmHook{s.durable}) }
			cc.OnNewNode(hook)
			s.cmdAPI.(*redis.ClusterClient).OnNewNode(hook)
		}
		s.rdb = cc
	} else {
		s.cmdAPI = newCommandClient(*ro, maxReply)
		base = *ro
		c := redis.NewClient(ro)
		if s.durable.replicas > 0 {
			c.AddHook(confirmHook{s.durable})
			s.cmdAPI.AddHook(confirmHook{s.durable})
		}
		s.rdb = c
	}
	s.rdb.AddHook(writeHook{})
	if cc, ok := s.cmdAPI.(*redis.ClusterClient); ok {
		cc.AddHook(reloadHook{cc})
	}
	s.aliases = newScriptAliases(maxScriptAliases)
	s.hub = newHub(s.rdb)
	s.closers = append([]func() error{s.hub.stop, s.rdb.Close, s.cmdAPI.Close}, s.closers...)
	if !opts.NoAutoPipeline {
		if err := s.enableCommandBatching(opts.Registry); err != nil { // on a cluster too
			s.Close()
			return nil, err
		}
	}

	if opts.Registry != nil {
		if err := registerAll(opts.Registry, newPoolCollector("main", s.rdb), newUpCollector(s.Ping, upTimeout), s.hub.droppedCounter()); err != nil {
			return nil, fmt.Errorf("register redis metrics: %w", err)
		}
		s.rdb.AddHook(errorHook{errors: cmdErrors})
		s.rdb.AddHook(latencyHook{seconds: cmdLatency})
		if err := s.registerCommandMetrics(opts.Registry, cmdErrors); err != nil {
			return nil, fmt.Errorf("register redis metrics: %w", err)
		}
		s.cmdAPI.AddHook(latencyHook{seconds: cmdLatency})
	}
	s.errs.vec, s.errs.latency = cmdErrors, cmdLatency
	if opts.TracerProvider != nil {
		if err := instrumentTracing(opts.TracerProvider, s.rdb, s.cmdAPI); err != nil {
			s.Close()
			return nil, err
		}
		s.spans = newBatchSpans(opts.TracerProvider)
	}
	if err := s.initLeases(opts.Registry); err != nil {
		s.Close()
		return nil, err
	}
	if !opts.NoAutoPipeline {
		if err := s.enableAutoPipeline(base, clusterBase); err != nil {
			s.Close()
			return nil, err
		}
		if opts.Registry != nil {
			if err := opts.Registry.Register(newPoolCollector("autopipeline", s.apClient)); err != nil {
				s.Close()
				return nil, fmt.Errorf("register redis metrics: %w", err)
			}
		}
	}
	if opts.NearCache != nil {
		var cc *redis.ClusterClient // routes the near-cache's reads where the batched commands go
		if clusterBase != nil {
			cc, _ = s.apClient.(*redis.ClusterClient)
			if cc == nil {
				cc = s.rdb.(*redis.ClusterClient)
			}
		}
		if err := s.enableNearCache(&base, cc, embedded, *opts.NearCache, logger, opts.Registry); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// upTimeout bounds the PING behind redis_gateway_redis_up, so a Redis that
// does not answer cannot hold a scrape.
const upTimeout = time.Second

func registerAll(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// configure applies the settings both kinds of client share to ro.
func configure(ro *redis.Options, opts Options, d *dialer) error {
	// The dialer does the TLS handshake itself, to name each node's
	// certificate and to say what failed.
	ro.TLSConfig = nil
	ro.Dialer = d.dial

	if opts.Username != "" {
		ro.Username = opts.Username
	}
	if opts.Password != "" {
		ro.Password = opts.Password
	}
	if opts.PasswordFile != "" {
		if _, err := readSecret(opts.PasswordFile); err != nil {
			return fmt.Errorf("REDIS_PASSWORD_FILE: %w", err)
		}
		user, file := ro.Username, opts.PasswordFile
		ro.Password = ""
		ro.CredentialsProviderContext = func(context.Context) (string, string, error) {
			pass, err := readSecret(file)
			return user, pass, err
		}
	}
	setIfPositive(&ro.PoolSize, opts.PoolSize)
	setIfPositive(&ro.MinIdleConns, opts.MinIdleConns)
	if opts.ConnMaxIdleTime != 0 {
		ro.ConnMaxIdleTime = opts.ConnMaxIdleTime
	}
	setIfPositive(&ro.DialTimeout, opts.DialTimeout)
	setIfPositive(&ro.ReadTimeout, opts.ReadTimeout)
	setIfPositive(&ro.WriteTimeout, opts.WriteTimeout)
	setIfPositive(&ro.MinRetryBackoff, opts.MinRetryBackoff)
	setIfPositive(&ro.MaxRetryBackoff, opts.MaxRetryBackoff)
	if opts.MaxRetries != 0 {
		ro.MaxRetries = opts.MaxRetries
	}
	// The request deadline, not a fixed socket timeout, bounds each command.
	ro.ContextTimeoutEnabled = true
	// One dial per attempt: commands already retry REDIS_MAX_RETRIES times with
	// backoff, and retrying every dial on top made a refused connection take
	// seconds to become a 503.
	ro.DialerRetries = 1
	ro.DisableIdentity = true // no CLIENT SETINFO: ElastiCache and older servers reject it
	// No CLIENT MAINT_NOTIFICATIONS either: Redis before 8 answers it with an
	// error on every new connection, which counted as a failed command.
	ro.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	// Every write is a pipeline (see roundtrip.go): one pool for all commands, so
	// REDIS_POOL_SIZE and REDIS_MIN_IDLE_CONNS cover them all.
	ro.PipelinePoolSize = -1
	return nil
}

// clusterOptions carries the shared settings over to a cluster client, whose
// node clients get them back.
func clusterOptions(nodes []string, ro *redis.Options) *redis.ClusterOptions {
	retries := ro.MaxRetries
	if retries == 0 {
		// The cluster client's own default is no retries on the nodes; keep
		// REDIS_MAX_RETRIES's default of 3 on both topologies.
		retries = 3
	}
	return &redis.ClusterOptions{
		Addrs:                      nodes,
		Dialer:                     ro.Dialer,
		Username:                   ro.Username,
		Password:                   ro.Password,
		CredentialsProviderContext: ro.CredentialsProviderContext,
		MaxRetries:                 retries,
		MinRetryBackoff:            ro.MinRetryBackoff,
		MaxRetryBackoff:            ro.MaxRetryBackoff,
		DialTimeout:                ro.DialTimeout,
		DialerRetries:              ro.DialerRetries,
		ReadTimeout:                ro.ReadTimeout,
		WriteTimeout:               ro.WriteTimeout,
		ContextTimeoutEnabled:      ro.ContextTimeoutEnabled,
		PoolSize:                   ro.PoolSize,
		MinIdleConns:               ro.MinIdleConns,
		ConnMaxIdleTime:            ro.ConnMaxIdleTime,
		DisableIdentity:            ro.DisableIdentity,
		MaintNotificationsConfig:   ro.MaintNotificationsConfig,
		PipelinePoolSize:           ro.PipelinePoolSize,
	}
}

// newClusterClient builds a cluster client on a copy of o, its own list of
// nodes included: go-redis keeps o.Addrs as the list and appends the nodes it
// discovers to it, so clients built from one value (or from another client's
// Options) would write into one array, each under its own lock. It fills in
// its defaults on the copy, too.
func newClusterClient(o redis.ClusterOptions) *redis.ClusterClient {
	o.Addrs = slices.Clone(o.Addrs)
	return redis.NewClusterClient(&o)
}

// reloadHook asks a cluster client to reload its slot map as soon as a node
// cannot be reached. go-redis otherwise reloads on MOVED replies and once a
// minute, and a crashed primary answers nothing at all: reads and writes of
// its slots kept failing long after its replica had taken over. Reloads run
// in the background, at most one per 200 ms.
type reloadHook struct{ cc *redis.ClusterClient }

func (h reloadHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h reloadHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.check(ctx, err)
		return err
	}
}

func (h reloadHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		h.check(ctx, err)
		return err
	}
}

func (h reloadHook) check(ctx context.Context, err error) {
	if err == nil || errors.Is(err, redis.Nil) {
		return
	}
	if c := classify("", err); errors.Is(c, ErrUnavailable) || errors.Is(c, ErrTimeout) || errors.Is(c, context.DeadlineExceeded) {
		h.cc.ReloadState(ctx)
	}
}

// newDialer checks the TLS settings against the scheme and builds the dialer
// of every connection. host is the configured endpoint's host.
func newDialer(o TLSOptions, rediss bool, host string, logger *slog.Logger) (*dialer, error) {
	d := &dialer{}
	if !rediss && !o.Enabled {
		if o.configured() {
			return nil, errors.New("REDIS_TLS_* settings are given but TLS is off: use a rediss:// URL or set REDIS_TLS_ENABLED=true")
		}
		return d, nil
	}
	cfg, err := o.tlsConfig()
	if err != nil {
		return nil, err
	}
	d.tls = cfg
	switch {
	case o.ServerName != "":
		d.name, d.override = o.ServerName, true
	case net.ParseIP(host) == nil:
		d.name = host
	}
	if o.InsecureSkipVerify {
		logger.Warn("REDIS_TLS_INSECURE_SKIP_VERIFY is on: Redis certificates are not checked, " +
			"so anyone on the network path can read and change traffic; use it only in development")
	}
	return d, nil
}

// Addr is the Redis URL with any password replaced by "xxxxx".
func (s *Store) Addr() string { return s.addr }

// Ping checks that Redis answers. On a cluster every primary is asked, and
// one that answers is enough: while a primary fails over, the others still
// serve their slots, and no gateway replica would do better.
func (s *Store) Ping(ctx context.Context) error {
	cc, ok := s.rdb.(*redis.ClusterClient)
	if !ok {
		err := ping(ctx, s.rdb.(*redis.Client))
		if err == nil && s.ap != nil {
			// The batched commands have a client of their own: ready means
			// both reach Redis.
			err = runCmd(ctx, s, reading, redis.NewStatusCmd, "ping").Err()
		}
		return classify("ping", err)
	}
	var mu sync.Mutex
	var answered int
	var failed error
	err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		err := ping(ctx, c)
		mu.Lock()
		defer mu.Unlock()
		if err == nil {
			answered++
		} else if failed == nil {
			failed = fmt.Errorf("%s: %w", c.Options().Addr, err)
		}
		return nil
	})
	if err == nil && answered == 0 {
		err = failed
		if err == nil {
			err = errors.New("the cluster has no primaries")
		}
	}
	return classify("ping", err)
}

// ping pings through c's pool and, when that fails to connect, over a new
// connection: after a run of failed dials go-redis stops dialing and tries
// again only once a second, and readiness should follow Redis faster.
func ping(ctx context.Context, c *redis.Client) error {
	err := c.Ping(ctx).Err()
	if err == nil || !isDialError(err) {
		return err
	}
	o := *c.Options()
	o.PoolSize, o.MinIdleConns, o.MaxRetries = 1, 0, -1
	fresh := redis.NewClient(&o)
	defer fresh.Close()
	return fresh.Ping(ctx).Err()
}

// Close releases the client, then the embedded server if there is one.
//
// It waits at most closeTimeout: batched commands run on the auto-pipeliner's
// own context, so against a Redis that stopped answering they end only when
// their read timeouts run out, and the client waits for them.
func (s *Store) Close() error {
	return closeWithin(func() error {
		var errs []error
		for _, c := range s.closers {
			errs = append(errs, c())
		}
		return errors.Join(errs...)
	}, closeTimeout)
}

const closeTimeout = 2 * time.Second

// closeWithin runs close and stops waiting for it after d; close goes on in
// the background.
func closeWithin(close func() error, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- close() }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("close redis client: commands still in flight after %s; not waiting for them", d)
	}
}

// Redact hides the password of a Redis URL, for logs.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	if _, has := u.User.Password(); !has {
		return raw
	}
	return u.Redacted()
}

func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

func setIfPositive[T int | time.Duration](dst *T, v T) {
	if v > 0 {
		*dst = v
	}
}

// startMemory runs miniredis for -dev and memory:// URLs. miniredis only moves
// its clock for TTLs when told to, so a ticker keeps expiry close to real time.
func startMemory() (*miniredis.Miniredis, func() error, error) {
	mr := miniredis.NewMiniRedis()
	if err := mr.StartAddr("127.0.0.1:0"); err != nil {
		return nil, nil, err
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		const tick = 100 * time.Millisecond
		t := time.NewTicker(tick)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				mr.FastForward(now.Sub(last))
				last = now
			}
		}
	}()
	stop := func() error {
		close(done)
		wg.Wait()
		mr.Close()
		return nil
	}
	return mr, stop, nil
}

// LogClientTo sends go-redis's own log lines (dial retries, pool events) to
// logger at debug level; each failed request already logs its error once.
// go-redis keeps one logger per process, so call this once, from main.
func LogClientTo(logger *slog.Logger) {
	redis.SetLogger(clientLog{logger})
}

type clientLog struct{ logger *slog.Logger }

func (l clientLog) Printf(ctx context.Context, format string, v ...any) {
	l.logger.DebugContext(ctx, "redis client: "+fmt.Sprintf(format, v...))
}

package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/redis-gateway/redis-gateway/internal/commandapi"
)

// Reply is one Redis reply in RESP2 terms: nil, int64, string, ReplyError (an
// error inside an array, as EXEC and scripts return them) or []Reply.
type Reply = any

// ReplyError is an error reply nested in an array reply.
type ReplyError string

// CommandError is Redis's error reply to a command, verbatim, or the
// gateway's refusal of a command in the same style.
type CommandError = commandapi.CommandError

// ErrNoCommandInfo is a Redis that does not describe its commands (COMMAND).
var ErrNoCommandInfo = commandapi.ErrNoCommandInfo

// Policy is what a request may do on the command API (see commandapi).
type Policy = commandapi.Policy

// Result is the outcome of one command of a pipeline or transaction: a reply,
// or an error that is a *CommandError or the failure that left the command
// without one.
type Result struct {
	Reply Reply
	Err   error
}

// maxScriptAliases bounds the script aliases: a client library has a few
// dozen scripts, and an entry costs about 200 bytes.
const maxScriptAliases = 4096

// newCommandClient returns the client of the command API: the main client's
// options (address, auth, TLS, timeouts, pool size) over RESP2, whose reply
// shapes are what Upstash clients decode. RESP3 would answer HGETALL with a
// map and scores with doubles. o is the options before go-redis fills in its
// defaults, which it does again for the new client. Its connections hold
// each round trip's replies to maxReply bytes (replybudget.go).
func newCommandClient(o redis.Options, maxReply int64) *redis.Client {
	o.Protocol = 2
	o.Dialer = budgetDialer(o.Dialer, maxReply)
	return redis.NewClient(&o)
}

// newClusterCommandClient is newCommandClient for Redis Cluster: go-redis
// routes each command by the slot of its first key, splits pipelines by node
// and refuses a transaction whose keys span slots with Redis's CROSSSLOT
// error. Keyless commands go to one primary (PING, TIME, INFO, RANDOMKEY,
// ...), except those about the whole data set, which prepare sends to every
// primary, and PUBLISH, which goes to its channel's; SCAN is refused, since
// its cursor only means something on the node that issued it.
func newClusterCommandClient(o redis.ClusterOptions, maxReply int64) *redis.ClusterClient {
	o.Protocol = 2
	o.Dialer = budgetDialer(o.Dialer, maxReply)
	return newClusterClient(o)
}

// command is a client's command made ready for Redis.
type command struct {
	args    []any
	label   string // for metrics
	write   bool   // not read-only: sent once (retry.go)
	changes bool   // may change data: confirmed by replicas (durable.go)
	refused error
	// answer replaces the reply to SCRIPT LOAD of a script compatScript
	// changed: the client expects the SHA of the text it sent.
	answer string
	// merge, on Redis Cluster, runs the command on every primary and merges
	// their replies, for keyless commands about the whole data set.
	merge func([]Reply) Reply
	// channel, on Redis Cluster, sends PUBLISH to the primary of the
	// channel's slot (see Store.Publish).
	channel string
	// firstKey, on Redis Cluster, is the position of the first key as the
	// command table finds it, which routes the command to its slot's
	// primary; 0 leaves routing to go-redis (keyless commands, keys the
	// table cannot tell).
	firstKey int8
}

// newCmd is the command to send, routed by the table's first key.
func (c command) newCmd(ctx context.Context) *redis.Cmd {
	cmd := redis.NewCmd(ctx, c.args...)
	if c.firstKey > 0 {
		cmd.SetFirstKeyPos(c.firstKey)
	}
	return cmd
}

// prepare looks args up in the command table, refuses what the gateway
// does not serve under p, and adapts scripts written for the hosted service.
// The arguments to send go at the start of into when it has room for them.
func (s *Store) prepare(ctx context.Context, t *commandapi.Table, p Policy, args []string, into []any) command {
	if len(args) == 0 {
		return command{label: "other", refused: &CommandError{Msg: "ERR empty command", Refused: true}}
	}
	name := t.Lower(args[0])
	info := t.Lookup(args)
	c := command{label: t.Label(name), write: info.Write(), changes: info.Changes()}
	if c.refused = commandapi.Refusal(p, info); c.refused != nil {
		return c
	}
	_, cluster := s.cmdAPI.(*redis.ClusterClient)
	if cluster {
		if name == "scan" {
			c.refused = &CommandError{Refused: true,
				Msg: "ERR command 'scan' is not supported on Redis Cluster: its cursor belongs to one node; use KEYS or per-key commands"}
			return c
		}
		c.merge = clusterMerge(args)
		if name == "publish" && len(args) > 1 {
			c.channel = args[1]
		}
		c.firstKey = firstKeyPos(ctx, t, info, args)
	}
	// Redis reads command names in any case; go-redis, which names every
	// command it sends for its own decisions and for metrics, lower-cases
	// the name each time it is not.
	if len(into) >= len(args) {
		c.args = into[:len(args):len(args)]
	} else {
		c.args = make([]any, len(args))
	}
	if cluster {
		c.args[0] = name
		for i := 1; i < len(args); i++ {
			c.args[i] = args[i]
		}
	} else {
		// A string in an interface is a copy of its header on the heap; a
		// pointer to it is not, and go-redis writes both alike. The cluster
		// client's routing reads keys as strings only.
		if args[0] == name {
			c.args[0] = &args[0]
		} else if shared := t.LowerShared(args[0]); shared != nil {
			c.args[0] = shared
		} else {
			c.args[0] = name
		}
		for i := 1; i < len(args); i++ {
			c.args[i] = &args[i]
		}
		if len(args) > 1 && (name == "command" || name == "cluster") {
			c.args[1] = args[1] // go-redis names these by a subcommand it reads as a string
		}
	}
	switch name {
	case "eval", "eval_ro":
		if len(args) > 1 {
			c.args[1] = s.compatScript(args[1])
		}
	case "evalsha", "evalsha_ro":
		if len(args) > 1 {
			c.args[1] = s.aliases.get(args[1])
		}
	case "script":
		if len(args) < 3 {
			break
		}
		switch strings.ToLower(args[1]) {
		case "load":
			if out := s.compatScript(args[2]); out != args[2] {
				c.args[2] = out
				c.answer = scriptSHA(args[2])
			}
		case "exists":
			for i := 2; i < len(args); i++ {
				c.args[i] = s.aliases.get(args[i])
			}
		}
	}
	return c
}

// commandsFor returns the command table and checks cmds against p before
// any runs. Without Redis's description of its commands the gateway still
// serves tokens that do not need it.
func (s *Store) commandsFor(ctx context.Context, p Policy, cmds [][]string) (*commandapi.Table, error) {
	t, err := s.commandTable(ctx)
	switch {
	case err == nil:
	case errors.Is(err, commandapi.ErrNoCommandInfo) || !p.NeedsTable():
		t = &commandapi.Table{}
	default:
		return nil, err
	}
	if err := t.Authorize(ctx, p, cmds); err != nil {
		return nil, err
	}
	return t, nil
}

// argSpace is room for the arguments of every command of cmds, which
// prepare fills one after the other.
func argSpace(cmds [][]string) []any {
	n := 0
	for _, args := range cmds {
		n += len(args)
	}
	return make([]any, n)
}

// firstKeyPos is where the command table finds the first key of args, 0
// when it finds none or cannot tell, or the position does not fit go-redis's
// int8.
func firstKeyPos(ctx context.Context, t *commandapi.Table, info commandapi.Command, args []string) int8 {
	keys, exact, err := t.Keys(ctx, info, args)
	if err != nil || !exact || len(keys) == 0 {
		return 0
	}
	i := slices.Index(args[1:], keys[0]) + 1
	if i <= 0 || i > 127 {
		return 0
	}
	return int8(i)
}

// clusterMerge returns how to merge the replies of every primary for the
// keyless commands whose meaning is the whole data set, nil for the others.
// Scripts are loaded everywhere so EVALSHA finds them whichever node owns
// its keys.
func clusterMerge(args []string) func([]Reply) Reply {
	sub := ""
	if len(args) > 1 {
		sub = strings.ToLower(args[1])
	}
	switch name := strings.ToLower(args[0]); {
	case name == "dbsize":
		return func(rs []Reply) Reply {
			var n int64
			for _, r := range rs {
				v, _ := r.(int64)
				n += v
			}
			return n
		}
	case name == "keys":
		return func(rs []Reply) Reply {
			all := []Reply{}
			for _, r := range rs {
				keys, _ := r.([]Reply)
				all = append(all, keys...)
			}
			return all
		}
	case name == "script" && sub == "load":
		return func(rs []Reply) Reply { return rs[0] }
	case name == "script" && sub == "exists":
		// A script exists where every primary has it.
		return func(rs []Reply) Reply {
			out, _ := rs[0].([]Reply)
			for _, r := range rs[1:] {
				found, _ := r.([]Reply)
				for i, v := range found {
					if i < len(out) && v != int64(1) {
						out[i] = int64(0)
					}
				}
			}
			return out
		}
	}
	return nil
}

// compatScript returns the script to send for src, and remembers which SHA
// stands for the client's.
func (s *Store) compatScript(src string) string {
	out, changed := compatScript(src)
	if changed {
		s.aliases.put(scriptSHA(src), scriptSHA(out))
	}
	return out
}

// result turns a command that ran into the API's reply and error.
func (c command) result(cmd *redis.Cmd) (Reply, error) {
	v, err := cmd.Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, commandErr(err)
	}
	r := toReply(v)
	if _, ok := r.(string); ok && c.answer != "" {
		r = c.answer
	}
	return r, nil
}

// commandErr passes Redis's error replies on verbatim, except those that say
// Redis cannot serve at all (loading, no auth, ...): those, and failures
// without a reply, are classified like every other Redis failure.
func commandErr(err error) error {
	var rerr redis.Error
	var tooLarge *ReplyTooLargeError
	if errors.As(err, &tooLarge) {
		return tooLarge
	}
	if errors.As(err, &rerr) && !isUnavailableReply(rerr.Error()) {
		return &CommandError{Msg: rerr.Error()}
	}
	return classify("redis command", err)
}

// toReply converts go-redis's RESP2 values, which need no conversion but for
// errors nested in arrays.
func toReply(v any) Reply {
	switch v := v.(type) {
	case nil, int64, string:
		return v
	case []any:
		out := make([]Reply, len(v))
		for i, e := range v {
			out[i] = toReply(e)
		}
		return out
	case error:
		return ReplyError(v.Error())
	default:
		// Only RESP3 has other types, and this client speaks RESP2.
		return fmt.Sprint(v)
	}
}

// Command runs one command of a client under p. The command points into
// args, which must not change after it returns: a command whose caller gave
// up on it may still be on its way to Redis.
func (s *Store) Command(ctx context.Context, p Policy, args []string) (Reply, error) {
	t, err := s.commandsFor(ctx, p, [][]string{args})
	if err != nil {
		return nil, err
	}
	c := s.prepare(ctx, t, p, args, nil)
	if c.refused != nil {
		s.countCommand(c.label, c.refused)
		return nil, c.refused
	}
	ctx, conf := s.confirming(ctx, c.changes)
	reply, err := s.run(ctx, c)
	if err == nil {
		err = conf.result()
	}
	s.countCommand(c.label, err)
	if err != nil {
		return nil, err
	}
	return reply, nil
}

// run runs a prepared command on its own: on the node go-redis routes it to,
// the node of its channel, or every primary when it has a merge.
func (s *Store) run(ctx context.Context, c command) (Reply, error) {
	if s.batchable(c) {
		return s.runBatched(ctx, c)
	}
	cluster, ok := s.cmdAPI.(*redis.ClusterClient)
	switch {
	case !ok || c.merge == nil && c.channel == "":
		return c.result(s.send(ctx, s.cmdAPI, c))
	case c.channel != "":
		node, err := cluster.MasterForKey(ctx, c.channel)
		if err != nil {
			return nil, classify("redis command", err)
		}
		return c.result(s.send(ctx, node, c))
	}
	var mu sync.Mutex
	var replies []Reply
	err := cluster.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		r, err := c.result(s.send(ctx, node, c))
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		replies = append(replies, r)
		return nil
	})
	var cerr *CommandError
	var tooLarge *ReplyTooLargeError
	switch {
	case errors.As(err, &cerr), errors.As(err, &tooLarge), isOwn(err):
		return nil, err
	case err != nil:
		return nil, classify("redis command", err)
	case len(replies) == 0:
		return nil, classify("redis command", errors.New("no primary answered"))
	}
	merged := c.merge(replies)
	if replySize(merged) > s.maxReply {
		return nil, &ReplyTooLargeError{Limit: s.maxReply}
	}
	return merged, nil
}

// Pipeline runs cmds under p in order in one round trip per node, not
// atomically. Each command has its own result; the error is set only when
// Redis answered none of them, when a scope refuses one of them (before any
// runs), or when the writes among them were not confirmed by replicas.
// Like Command, it points into cmds, which must not change after it returns.
func (s *Store) Pipeline(ctx context.Context, p Policy, cmds [][]string) ([]Result, error) {
	t, err := s.commandsFor(ctx, p, cmds)
	if err != nil {
		return nil, err
	}
	prepared := make([]command, len(cmds))
	write, batchable := false, true
	into := argSpace(cmds)
	for i, args := range cmds {
		prepared[i] = s.prepare(ctx, t, p, args, into)
		into = into[len(prepared[i].args):]
		write = write || prepared[i].refused == nil && prepared[i].changes
		batchable = batchable && (prepared[i].refused != nil || s.batchable(prepared[i]))
	}
	var sent []*redis.Cmd
	if batchable {
		// Reads only: they share batches with other requests', and go again
		// as one pipeline on the command client if one got no answer there.
		var ok bool
		if sent, ok, err = s.pipelineBatched(ctx, prepared); err != nil {
			s.countAll(prepared, err)
			return nil, commandErr(err)
		} else if !ok {
			sent = nil
		}
	}
	ctx, conf := s.confirming(ctx, write)
	if sent == nil {
		sent = make([]*redis.Cmd, len(cmds))
		s.sendPipeline(ctx, func(pipe redis.Pipeliner) {
			for i, c := range prepared {
				if c.refused == nil && c.merge == nil && c.channel == "" {
					sent[i] = c.newCmd(ctx)
					_ = pipe.Process(ctx, guard(sent[i], c.write))
				}
			}
		})
	}
	results := make([]Result, len(cmds))
	var failure error
	answered := false
	for i, c := range prepared {
		if c.refused != nil {
			results[i].Err = c.refused
		} else {
			// A cluster pipeline runs on its nodes side by side, so a command
			// for a node of its own choosing may as well come after the others.
			if sent[i] == nil {
				results[i].Reply, results[i].Err = s.run(ctx, c)
			} else {
				results[i].Reply, results[i].Err = c.result(sent[i])
			}
			if results[i].Err == nil || isCommandError(results[i].Err) {
				answered = true
			} else if failure == nil {
				failure = results[i].Err
			}
		}
		s.countCommand(c.label, results[i].Err)
	}
	var size int64
	for _, r := range results {
		if tooLarge := replyTooLarge(r.Err); tooLarge != nil {
			return nil, tooLarge
		}
		size += replySize(r.Reply)
	}
	if size > s.maxReply {
		// On Redis Cluster each node's connection held its share to the
		// budget; together they are over it.
		return nil, &ReplyTooLargeError{Limit: s.maxReply}
	}
	if failure != nil && !answered {
		return nil, failure
	}
	if err := conf.result(); err != nil {
		return nil, err
	}
	return results, nil
}

// Transaction runs cmds under p atomically, in MULTI and EXEC on one
// connection. A transaction Redis rejects as a whole (a command it refused
// to queue, keys in several cluster slots) or the gateway refuses is a
// *CommandError; a command failing while the transaction runs has its own
// result. Like Command, it points into cmds.
func (s *Store) Transaction(ctx context.Context, p Policy, cmds [][]string) ([]Result, error) {
	t, err := s.commandsFor(ctx, p, cmds)
	if err != nil {
		return nil, err
	}
	prepared := make([]command, len(cmds))
	write := false
	into := argSpace(cmds)
	for i, args := range cmds {
		prepared[i] = s.prepare(ctx, t, p, args, into)
		into = into[len(prepared[i].args):]
		if err := prepared[i].refused; err != nil {
			s.countAll(prepared, err)
			return nil, execAbort(i, err.Error())
		}
		write = write || prepared[i].changes
	}
	var conn *redis.Conn // the transaction's own connection, to WAIT on after EXEC
	if write && s.durable.replicas > 0 {
		if conn, err = s.txConn(ctx, prepared); err != nil {
			s.countAll(prepared, err)
			return nil, err
		}
		defer conn.Close()
	}
	sent := make([]*redis.Cmd, len(cmds))
	err = s.sendTx(ctx, conn, func(tx redis.Pipeliner) {
		for i, c := range prepared {
			sent[i] = c.newCmd(ctx)
			_ = tx.Process(ctx, guard(sent[i], c.write))
		}
	})
	var rerr redis.Error
	switch {
	case err == nil || errors.Is(err, redis.Nil):
	case !errors.As(err, &rerr):
		s.countAll(prepared, err)
		return nil, commandErr(err)
	case strings.HasPrefix(err.Error(), "EXECABORT"):
		s.countAll(prepared, err)
		for i, cmd := range sent {
			if e := cmd.Err(); e != nil && !strings.HasPrefix(e.Error(), "EXECABORT") {
				return nil, execAbort(i, e.Error())
			}
		}
		return nil, &CommandError{Msg: err.Error()}
	case errors.Is(err, redis.ErrCrossSlot):
		s.countAll(prepared, err)
		return nil, &CommandError{Msg: err.Error()}
	}
	results := make([]Result, len(cmds))
	for i, c := range prepared {
		results[i].Reply, results[i].Err = c.result(sent[i])
		s.countCommand(c.label, results[i].Err)
	}
	if conn != nil {
		if err := s.durable.wait(ctx, conn); err != nil {
			return nil, err
		}
	}
	return results, nil
}

// isCommandError and replyTooLarge look into errors only when there is
// one: the variable errors.As fills is allocated wherever it is declared.
func isCommandError(err error) bool {
	var cerr *CommandError
	return err != nil && errors.As(err, &cerr)
}

func replyTooLarge(err error) *ReplyTooLargeError {
	if err == nil {
		return nil
	}
	var tooLarge *ReplyTooLargeError
	if errors.As(err, &tooLarge) {
		return tooLarge
	}
	return nil
}

// execAbort is the rejection of a whole transaction because of command i,
// in the words Redis uses for it plus which command it was.
func execAbort(i int, cause string) error {
	return &CommandError{Msg: fmt.Sprintf("EXECABORT Transaction discarded because of previous errors. (command %d: %s)", i+1, cause)}
}

func (s *Store) countCommand(label string, err error) {
	if s.commands == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = "error"
	}
	s.commands.WithLabelValues(label, result).Inc()
}

func (s *Store) countAll(cmds []command, err error) {
	for _, c := range cmds {
		s.countCommand(c.label, err)
	}
}

// registerCommandMetrics counts the command API's commands, its pool, and
// its failed commands alongside the main client's.
func (s *Store) registerCommandMetrics(reg prometheus.Registerer, cmdErrors *prometheus.CounterVec) error {
	s.commands = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "redis_gateway",
		Name:      "command_api_commands_total",
		Help:      "Commands run through /redis, by command (names outside the Redis command set are \"other\") and result.",
	}, []string{"command", "result"})
	if err := reg.Register(s.commands); err != nil {
		return err
	}
	if err := reg.Register(newPoolCollector("command_api", s.cmdAPI)); err != nil {
		return err
	}
	s.cmdAPI.AddHook(errorHook{errors: cmdErrors})
	return nil
}

package store

import (
	"context"
	"strings"
)

// commandClass says how the command API treats a command. Every command
// not in the table below is plain: it goes to Redis, which answers
// "unknown command" for names it does not know.
type commandClass uint8

const (
	classPlain commandClass = iota
	// classAdmin commands can destroy data or reconfigure the server.
	classAdmin
	// classBlocking commands hold a pooled connection for as long as they wait.
	classBlocking
	// classConnection commands change the state of the connection they run
	// on, which the next request would inherit from the pool.
	classConnection
	// classTransaction commands only make sense on one connection:
	// POST /redis/multi-exec does MULTI and EXEC itself.
	classTransaction
	// classSubscribe commands turn a connection into a subscriber; they are
	// served as event streams.
	classSubscribe
)

// commandClasses is the one table of commands the command API refuses.
// Subcommands of script, function and client are classed in subcommandClasses.
var commandClasses = map[string]commandClass{
	"flushall": classAdmin, "flushdb": classAdmin, "config": classAdmin, "shutdown": classAdmin,
	"debug": classAdmin, "save": classAdmin, "bgsave": classAdmin, "bgrewriteaof": classAdmin,
	"replicaof": classAdmin, "slaveof": classAdmin, "cluster": classAdmin, "acl": classAdmin,
	"module": classAdmin, "migrate": classAdmin, "failover": classAdmin, "swapdb": classAdmin,
	"pfdebug": classAdmin,

	"blpop": classBlocking, "brpop": classBlocking, "brpoplpush": classBlocking, "blmove": classBlocking,
	"blmpop": classBlocking, "bzpopmin": classBlocking, "bzpopmax": classBlocking, "bzmpop": classBlocking,
	"wait": classBlocking, "waitaof": classBlocking,

	"select": classConnection, "quit": classConnection, "reset": classConnection, "hello": classConnection,
	"auth": classConnection, "readonly": classConnection, "readwrite": classConnection,
	"asking": classConnection, "monitor": classConnection, "sync": classConnection, "psync": classConnection,
	"replconf": classConnection,

	"multi": classTransaction, "exec": classTransaction, "discard": classTransaction,
	"watch": classTransaction, "unwatch": classTransaction,

	"subscribe": classSubscribe, "psubscribe": classSubscribe, "ssubscribe": classSubscribe,
	"unsubscribe": classSubscribe, "punsubscribe": classSubscribe, "sunsubscribe": classSubscribe,
}

// subcommandClasses classes the subcommands of commands that are partly
// harmless. A subcommand not listed takes the class under "".
var subcommandClasses = map[string]map[string]commandClass{
	"script": {
		"flush": classAdmin, "kill": classAdmin, "debug": classConnection,
	},
	"function": {
		"flush": classAdmin, "delete": classAdmin, "restore": classAdmin, "kill": classAdmin,
	},
	// CLIENT KILL, LIST, PAUSE and the like are administration; the rest
	// (SETNAME, REPLY, TRACKING, ...) would stick to a pooled connection.
	"client": {
		"":     classConnection,
		"kill": classAdmin, "list": classAdmin, "info": classAdmin, "pause": classAdmin,
		"unpause": classAdmin, "unblock": classAdmin,
	},
}

// classifyCommand returns the class of the command args (name first).
func classifyCommand(args []string) commandClass {
	name := strings.ToLower(args[0])
	if subs, ok := subcommandClasses[name]; ok {
		if len(args) > 1 {
			if c, ok := subs[strings.ToLower(args[1])]; ok {
				return c
			}
		}
		return subs[""]
	}
	switch name {
	case "xread", "xreadgroup":
		// Only their BLOCK form waits. The option comes before STREAMS, so a
		// stream or group named "block" is not mistaken for it.
		for _, a := range args[1:] {
			switch strings.ToLower(a) {
			case "block":
				return classBlocking
			case "streams":
				return classPlain
			}
		}
	}
	return commandClasses[name]
}

type adminKey struct{}

// WithAdmin returns ctx in which the command API runs the administrative
// commands it refuses by default (FLUSHALL, CONFIG, SCRIPT FLUSH, ...) for
// which admit answers true: the request's token was granted them.
func WithAdmin(ctx context.Context, admit func(args []string) bool) context.Context {
	return context.WithValue(ctx, adminKey{}, admit)
}

func adminAdmitted(ctx context.Context, args []string) bool {
	admit, _ := ctx.Value(adminKey{}).(func([]string) bool)
	return admit != nil && admit(args)
}

// refusal is the error for a command of class c, in Redis's own style so
// clients that look at error texts treat it like a server's refusal.
func refusal(c commandClass, args []string) error {
	name := strings.ToLower(args[0])
	if _, ok := subcommandClasses[name]; ok && len(args) > 1 {
		name += " " + strings.ToLower(args[1])
	}
	var msg string
	switch c {
	case classAdmin:
		msg = "ERR command '" + name + "' is not allowed through the gateway"
	case classBlocking:
		msg = "ERR blocking command '" + name + "' is not supported over HTTP"
	case classConnection:
		msg = "ERR command '" + name + "' changes connection state and is not supported over HTTP"
	case classTransaction:
		msg = "ERR command '" + name + "' is not supported: send the whole transaction to /redis/multi-exec"
	case classSubscribe:
		msg = "ERR command '" + name + "' is only served as an event stream: POST /redis/subscribe/{channel} or /redis/psubscribe/{pattern}"
	default:
		return nil
	}
	return &CommandError{Msg: msg, Refused: true}
}

// knownCommands are the command names metrics may carry as labels; every
// other name a client sends is counted as "other", so clients cannot grow the
// number of series.
var knownCommands = func() map[string]bool {
	m := map[string]bool{}
	for _, name := range strings.Fields(`
		append bitcount bitfield bitfield_ro bitop bitpos copy dbsize decr decrby del dump echo
		eval eval_ro evalsha evalsha_ro exists expire expireat expiretime fcall fcall_ro
		geoadd geodist geohash geopos georadius georadius_ro georadiusbymember georadiusbymember_ro
		geosearch geosearchstore get getbit getdel getex getrange getset
		hdel hexists hexpire hexpireat hexpiretime hget hgetall hgetdel hgetex hincrby hincrbyfloat
		hkeys hlen hmget hmset hpersist hpexpire hpexpireat hpexpiretime hpttl hrandfield hscan
		hset hsetex hsetnx hstrlen httl hvals
		incr incrby incrbyfloat info keys lastsave latency lcs lindex linsert llen lmove lmpop lolwut
		lpop lpos lpush lpushx lrange lrem lset ltrim memory mget move mset msetnx object
		persist pexpire pexpireat pexpiretime pfadd pfcount pfmerge pfselftest ping psetex pttl
		publish pubsub randomkey rename renamenx restore role rpop rpoplpush rpush rpushx
		sadd scan scard script sdiff sdiffstore set setbit setex setnx setrange sinter sintercard
		sinterstore sismember slowlog smembers smismember smove sort sort_ro spop spublish
		srandmember srem sscan strlen substr sunion sunionstore time touch ttl type unlink
		xack xadd xautoclaim xclaim xdel xgroup xinfo xlen xpending xrange xread xreadgroup
		xrevrange xsetid xtrim
		zadd zcard zcount zdiff zdiffstore zincrby zinter zintercard zinterstore zlexcount zmpop
		zmscore zpopmax zpopmin zrandmember zrange zrangebylex zrangebyscore zrangestore zrank
		zrem zremrangebylex zremrangebyrank zremrangebyscore zrevrange zrevrangebylex
		zrevrangebyscore zrevrank zscan zscore zunion zunionstore
		command function client`) {
		m[name] = true
	}
	for name := range commandClasses {
		m[name] = true
	}
	return m
}()

// commandLabel is the metric label for a command name: the name in lower
// case when it is a Redis command, "other" otherwise.
func commandLabel(name string) string {
	name = strings.ToLower(name)
	if knownCommands[name] {
		return name
	}
	return "other"
}

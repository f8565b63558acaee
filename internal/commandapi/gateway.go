package commandapi

import (
	"strings"

	"github.com/redis-gateway/redis-gateway/access"
)

// Serving says whether the gateway serves a command, and if not, why.
// Every command not named below is served: it goes to Redis, which answers
// "unknown command" for names it does not know.
type Serving uint8

const (
	Served Serving = iota
	// RefusedAdmin commands can destroy data or reconfigure the server: run
	// only for a token whose commands admit them (the admin class, or an
	// allow naming them).
	RefusedAdmin
	// RefusedBlocking commands hold a pooled connection for as long as they
	// wait.
	RefusedBlocking
	// RefusedConnection commands change the state of the connection they
	// run on, which the next request would inherit from the pool.
	RefusedConnection
	// RefusedTransaction commands only make sense on one connection:
	// POST /redis/multi-exec does MULTI and EXEC itself.
	RefusedTransaction
	// RefusedSubscribe commands turn a connection into a subscriber; they
	// are served as event streams.
	RefusedSubscribe
)

// Reach says what outside its named keys a command reaches; a
// key-restricted token is refused all but ReachKeys unless its commands
// allow the command by name (KEYS and SCAN excepted, checked by pattern).
type Reach uint8

const (
	// ReachKeys commands touch the keys their arguments name, and nothing
	// else.
	ReachKeys Reach = iota
	// ReachKeyspace commands reach keys they do not name: KEYS, SCAN,
	// RANDOMKEY, DBSIZE, FLUSHDB, FLUSHALL, SWAPDB.
	ReachKeyspace
	// ReachScript commands run code that can reach keys it does not
	// declare, and run any command, denied ones included.
	ReachScript
	// ReachServer commands read or change state every user of the server
	// shares: function libraries, the script cache, the slow log, latency
	// and memory reports, INFO, configuration.
	ReachServer
)

// servingRules is the one table of commands the command API refuses.
// Subcommands of script, function and client are in subServingRules.
var servingRules = map[string]Serving{
	"flushall": RefusedAdmin, "flushdb": RefusedAdmin, "config": RefusedAdmin, "shutdown": RefusedAdmin,
	"debug": RefusedAdmin, "save": RefusedAdmin, "bgsave": RefusedAdmin, "bgrewriteaof": RefusedAdmin,
	"replicaof": RefusedAdmin, "slaveof": RefusedAdmin, "cluster": RefusedAdmin, "acl": RefusedAdmin,
	"module": RefusedAdmin, "migrate": RefusedAdmin, "failover": RefusedAdmin, "swapdb": RefusedAdmin,
	"pfdebug": RefusedAdmin,

	"blpop": RefusedBlocking, "brpop": RefusedBlocking, "brpoplpush": RefusedBlocking, "blmove": RefusedBlocking,
	"blmpop": RefusedBlocking, "bzpopmin": RefusedBlocking, "bzpopmax": RefusedBlocking, "bzmpop": RefusedBlocking,
	"wait": RefusedBlocking, "waitaof": RefusedBlocking,

	"select": RefusedConnection, "quit": RefusedConnection, "reset": RefusedConnection, "hello": RefusedConnection,
	"auth": RefusedConnection, "readonly": RefusedConnection, "readwrite": RefusedConnection,
	"asking": RefusedConnection, "monitor": RefusedConnection, "sync": RefusedConnection, "psync": RefusedConnection,
	"replconf": RefusedConnection,

	"multi": RefusedTransaction, "exec": RefusedTransaction, "discard": RefusedTransaction,
	"watch": RefusedTransaction, "unwatch": RefusedTransaction,

	"subscribe": RefusedSubscribe, "psubscribe": RefusedSubscribe, "ssubscribe": RefusedSubscribe,
	"unsubscribe": RefusedSubscribe, "punsubscribe": RefusedSubscribe, "sunsubscribe": RefusedSubscribe,
}

// subServingRules classes the subcommands of commands that are partly
// harmless. A subcommand not listed takes the rule under "".
var subServingRules = map[string]map[string]Serving{
	"script": {
		"flush": RefusedAdmin, "kill": RefusedAdmin, "debug": RefusedConnection,
	},
	"function": {
		"flush": RefusedAdmin, "delete": RefusedAdmin, "restore": RefusedAdmin, "kill": RefusedAdmin,
	},
	// CLIENT KILL, LIST, PAUSE and the like are administration; the rest
	// (SETNAME, REPLY, TRACKING, ...) would stick to a pooled connection.
	"client": {
		"":     RefusedConnection,
		"kill": RefusedAdmin, "list": RefusedAdmin, "info": RefusedAdmin, "pause": RefusedAdmin,
		"unpause": RefusedAdmin, "unblock": RefusedAdmin,
	},
}

func serving(name, sub string, args []string) Serving {
	if subs, ok := subServingRules[name]; ok {
		if s, ok := subs[sub]; ok && sub != "" {
			return s
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
				return RefusedBlocking
			case "streams":
				return Served
			}
		}
	}
	return servingRules[name]
}

// scriptCommands run scripts: Redis's key specifications name the keys they
// declare, and the script may still reach others.
var scriptCommands = map[string]bool{
	"eval": true, "evalsha": true, "eval_ro": true, "evalsha_ro": true, "fcall": true, "fcall_ro": true,
}

// keyspaceCommands reach keys they do not name. From Redis 6 on, the ACL
// category @keyspace on a command without keys says the same; this list
// serves older servers.
var keyspaceCommands = map[string]bool{
	"keys": true, "scan": true, "randomkey": true, "dbsize": true, "flushdb": true, "flushall": true, "swapdb": true,
}

// serverCommands reach state every user of the server shares, whatever
// Redis's flags say: Redis does not flag FUNCTION LIST, MEMORY STATS or
// SCRIPT LOAD administrative, and yet they show or change what belongs to
// everyone. Administrative commands without keys are added from the table
// (see entry.serverWide). A name without "|" covers every subcommand.
var serverCommands = map[string]bool{
	"function|load": true, "function|delete": true, "function|flush": true, "function|restore": true,
	"function|list": true, "function|dump": true, "function|stats": true, "function|kill": true,
	"script|load": true, "script|flush": true, "script|kill": true,
	"slowlog": true, "latency": true, "info": true, "config": true, "client": true, "acl": true, "debug": true,
	"memory|doctor": true, "memory|stats": true, "memory|malloc-stats": true, "memory|purge": true,
	"module": true, "monitor": true,
}

func staticReach(name, sub string) Reach {
	switch {
	case scriptCommands[name]:
		return ReachScript
	case keyspaceCommands[name]:
		return ReachKeyspace
	case serverCommands[name] || sub != "" && serverCommands[name+"|"+sub]:
		return ReachServer
	}
	return ReachKeys
}

// classCorrections replace the class Redis's flags give: SCRIPT LOAD is not
// flagged write, yet each script it loads stays in the script cache, which
// nothing evicts.
var classCorrections = map[string]string{
	"script|load": access.ClassWrite,
}

// Refusal is the error for a command the gateway does not serve under p, in
// Redis's own style so clients that look at error texts treat it like a
// server's refusal; nil when it serves it.
func Refusal(p Policy, c Command) error {
	name := c.base
	if _, ok := subServingRules[name]; ok && c.sub != "" {
		name += " " + c.sub
	}
	var msg string
	switch c.Serve {
	case Served:
		return nil
	case RefusedAdmin:
		if p.admitsAdmin(c.base, c.sub) {
			return nil
		}
		msg = "ERR command '" + name + "' is not allowed through the gateway"
	case RefusedBlocking:
		msg = "ERR blocking command '" + name + "' is not supported over HTTP"
	case RefusedConnection:
		msg = "ERR command '" + name + "' changes connection state and is not supported over HTTP"
	case RefusedTransaction:
		msg = "ERR command '" + name + "' is not supported: send the whole transaction to /redis/multi-exec"
	case RefusedSubscribe:
		msg = "ERR command '" + name + "' is only served as an event stream: POST /redis/subscribe/{channel} or /redis/psubscribe/{pattern}"
	}
	return &CommandError{Msg: msg, Refused: true}
}

// Label is the metric label of a command name without the table: the name
// in lower case when the gateway knows it, "other" otherwise.
func Label(name string) string {
	name = strings.ToLower(name)
	if knownCommands[name] {
		return name
	}
	return "other"
}

// knownCommands are the command names metrics may carry as labels when
// Redis gave no description of its commands.
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
	for name := range servingRules {
		m[name] = true
	}
	return m
}()

-- Take a waiter's ticket out of a lock's queue, and tell the waiters: the
-- next ticket may now be first.
-- KEYS[1] queue, KEYS[2] ticket leases
-- ARGV[1] ticket, ARGV[2] the channel on which gateways wait for the lock
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('PUBLISH', ARGV[2], '')
end
return 0

// Package redis is a live.Layer over Redis Pub/Sub, for many server
// processes that share one Redis:
//
//	layer, err := redis.New(ctx, redis.Config{URL: "redis://127.0.0.1:6379/0"})
//	router := live.NewRouter(live.Config{Layer: layer, ...})
//
// Each topic is a Redis channel ("restlive:todolist%2ETask:list_id:14"). A
// process subscribes, on one connection per Layer, to the channels of the
// topics its receivers joined, and publishes a batch of changes as one
// message per topic. Each process delivers each change once, in publish
// order, however many of its joined topics the change was published to.
//
// When the connection to Redis drops, the layer logs it, reconnects with
// backoff, subscribes again, and then delivers a live.Delivery whose Missed
// lists the topics joined at that time, so that their subscribers
// resynchronise. Publish fails while Redis is unreachable.
package redis

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/restlive/restlive/layer"
	"github.com/restlive/restlive/layer/internal/fanout"
	"github.com/restlive/restlive/live"
)

// Config configures a Layer. The zero value connects to a local Redis.
type Config struct {
	// URL is the Redis server, as redis.ParseURL reads it:
	// redis://[user:password@]host:port/db or rediss:// for TLS. Defaults
	// to "redis://127.0.0.1:6379/0".
	URL string
	// Prefix starts every channel name, so that several applications can
	// share one Redis. Defaults to "restlive".
	Prefix string
	// Logger receives connection faults and recoveries. Defaults to
	// slog.Default().
	Logger *slog.Logger
	// Timeout bounds connecting at start and, when the context passed has
	// no deadline, each Join. Defaults to 5s.
	Timeout time.Duration
	// MaxReconnectWait is the longest wait between two reconnection
	// attempts; waits start at 1/32 of it and double. Defaults to 2s.
	MaxReconnectWait time.Duration
	// HealthInterval is how long the connection may stay silent before
	// the layer pings Redis, and then how long it waits for the answer
	// before it reconnects. Defaults to 15s.
	HealthInterval time.Duration
	// MaxMessageBytes bounds a message; larger batches are split. Defaults
	// to 1 MiB.
	MaxMessageBytes int
}

// Layer is a live.Layer over Redis Pub/Sub. All methods may be called
// concurrently.
type Layer struct {
	cfg    Config
	url    string // redacted, for messages
	client *goredis.Client
	ps     *goredis.PubSub
	f      *fanout.Fanout
	log    *slog.Logger

	down   atomic.Bool  // the subscription connection is down
	readAt atomic.Int64 // when the reader last got something, in Unix ns

	mu       sync.Mutex
	waiters  map[string]chan error // Sync pings awaiting their pong
	nextPing uint64

	ctx    context.Context // ends at Close; stops the reader
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool
}

var _ live.Layer = (*Layer)(nil)

const (
	restorePing = "restlive-restore"
	healthPing  = "restlive-health"
	syncPing    = "restlive-sync-"
)

// New connects to Redis and starts the layer's reader, which Close stops.
// A bad URL or an unreachable server is an error.
func New(ctx context.Context, cfg Config) (*Layer, error) {
	if cfg.URL == "" {
		cfg.URL = "redis://127.0.0.1:6379/0"
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "restlive"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.MaxReconnectWait <= 0 {
		cfg.MaxReconnectWait = 2 * time.Second
	}
	if cfg.HealthInterval <= 0 {
		cfg.HealthInterval = 15 * time.Second
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = 1 << 20
	}
	shown := redact(cfg.URL)
	if err := fanout.CheckPrefix(cfg.Prefix); err != nil {
		return nil, fmt.Errorf("layer/redis: %w", err)
	}
	opt, err := goredis.ParseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("layer/redis: parse URL %s: %w", shown, err)
	}
	opt.DialTimeout = cfg.Timeout
	// Fail fast while Redis is down: the capture retries a failed Publish
	// from its cursor, and the reader reconnects on its own schedule. One
	// retry still covers a pooled connection that died idle. The URL's
	// dialer_retries and max_retries override these.
	if opt.DialerRetries == 0 {
		opt.DialerRetries = 1
	}
	if opt.MaxRetries == 0 {
		opt.MaxRetries = 1
	}
	// A quiet start-up: Redis before 7.2 does not know the handshake
	// commands these would send.
	opt.DisableIdentity = true
	opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	// Publish is serialised, so one connection publishes; a second is for
	// a command issued while it is being replaced.
	opt.PoolSize = 2
	client := goredis.NewClient(opt)
	pctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	err = client.Ping(pctx).Err()
	cancel()
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("layer/redis: connect to %s: %w", shown, err)
	}
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		client.Close()
		return nil, fmt.Errorf("layer/redis: publisher id: %w", err)
	}
	l := &Layer{cfg: cfg, url: shown, client: client, log: cfg.Logger, waiters: make(map[string]chan error)}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.ps = client.Subscribe(ctx)
	// Connect the subscription connection now, so that a failure shows
	// here rather than at the first Join.
	pctx, cancel = context.WithTimeout(ctx, cfg.Timeout)
	err = l.ps.Ping(pctx, healthPing)
	cancel()
	if err != nil {
		l.ps.Close()
		client.Close()
		return nil, fmt.Errorf("layer/redis: connect to %s: %w", shown, err)
	}
	l.f = fanout.New(fanout.Config{
		Name:   "layer/redis",
		Naming: fanout.Naming{Prefix: cfg.Prefix, Sep: ':'},
		Logger: cfg.Logger,
		Broker: (*broker)(l),
	}, binary.LittleEndian.Uint64(id[:]))
	l.readAt.Store(time.Now().UnixNano())
	l.wg.Add(1)
	go l.read()
	return l, nil
}

// Publish sends changes to the channels of their topics, one message per
// topic per batch, and returns when Redis has taken them all. A batch's
// messages go in one MULTI/EXEC transaction: Redis publishes all or none
// of them, and sends them to each subscriber one after the other.
func (l *Layer) Publish(ctx context.Context, changes []live.Change) error {
	if len(changes) == 0 {
		return nil
	}
	if l.closed.Load() {
		return fmt.Errorf("layer/redis: publish: %w", fanout.ErrClosed)
	}
	return l.f.Publish(ctx, changes, l.cfg.MaxMessageBytes, func(ctx context.Context, msgs []fanout.Outgoing) error {
		pipe := l.client.TxPipeline()
		for _, m := range msgs {
			pipe.Publish(ctx, m.Channel, m.Data)
		}
		_, err := pipe.Exec(ctx)
		return err
	})
}

// Stats returns the layer's counters, for metrics: whether the broker
// connection is up, how often it came back, the messages published and
// received, and the drops reported as missed.
func (l *Layer) Stats() layer.Stats { return l.f.Stats() }

// Receive adds a receiver: deliver is called, one call at a time, with the
// changes of the topics the receiver joins. deliver should return soon;
// while receivers are far behind, the layer stops reading from Redis. ctx
// only bounds the call: the receiver lives until closed.
func (l *Layer) Receive(_ context.Context, deliver func(live.Delivery)) (live.Receiver, error) {
	return l.f.Receive(deliver)
}

// Close stops the layer: deliveries end and the connections close.
func (l *Layer) Close() error {
	if l.closed.Swap(true) {
		return nil
	}
	l.cancel()
	l.ps.Close()
	l.wg.Wait()
	l.f.Close()
	return l.client.Close()
}

// read is the layer's one reader of the subscription connection: it hands
// messages and subscription confirmations to the fanout in stream order,
// and notices and repairs a lost connection.
func (l *Layer) read() {
	defer l.wg.Done()
	var (
		lost        bool      // between a failure and the restore pong
		restoreSent bool      // the restore ping went out on the current connection
		pingSent    time.Time // an unanswered health ping
		wait        time.Duration
	)
	for {
		if lost && !restoreSent {
			// Ping reconnects and subscribes again if needed (go-redis
			// does both on use); its pong says the subscriptions before
			// it are in effect.
			if err := l.ps.Ping(l.ctx, restorePing); err != nil {
				l.log.Debug("layer/redis: reconnect failed", "url", l.url, "err", err)
			} else {
				restoreSent = true
			}
		}
		timeout := min(l.cfg.HealthInterval, l.f.Expire(time.Now()))
		var msg any
		var err error
		if !pingSent.IsZero() {
			// No timeout tolerance here: a connection silent after a
			// ping is dead, and go-redis replaces it on this error.
			ctx, cancel := context.WithDeadline(l.ctx, pingSent.Add(l.cfg.HealthInterval))
			msg, err = l.ps.Receive(ctx)
			cancel()
		} else {
			msg, err = l.ps.ReceiveTimeout(l.ctx, timeout)
		}
		if l.ctx.Err() != nil {
			return
		}
		if err != nil {
			var ne net.Error
			if pingSent.IsZero() && errors.As(err, &ne) && ne.Timeout() {
				if !lost && time.Since(l.lastRead()) >= l.cfg.HealthInterval {
					if l.ps.Ping(l.ctx, healthPing) == nil {
						pingSent = time.Now()
					}
				}
				continue
			}
			pingSent, restoreSent = time.Time{}, false
			if !lost {
				lost = true
				l.down.Store(true)
				l.log.Warn("layer/redis: connection lost; reconnecting", "url", l.url, "err", err)
				l.f.Lost()
				l.releaseWaiters(fanout.ErrDown)
				wait = l.cfg.MaxReconnectWait / 32
			}
			if !l.sleep(wait) {
				return
			}
			wait = min(2*wait, l.cfg.MaxReconnectWait)
			continue
		}
		l.readAt.Store(time.Now().UnixNano())
		pingSent = time.Time{}
		switch m := msg.(type) {
		case *goredis.Message:
			l.f.Message(m.Channel, m.Payload)
		case *goredis.Subscription:
			switch m.Kind {
			case "subscribe":
				l.f.Confirm(m.Channel)
			case "unsubscribe":
				l.f.Unconfirm(m.Channel)
			}
		case *goredis.Pong:
			switch {
			case m.Payload == restorePing && lost:
				lost = false
				l.down.Store(false)
				l.log.Info("layer/redis: reconnected", "url", l.url)
				l.f.Restored()
			case strings.HasPrefix(m.Payload, syncPing):
				l.release(m.Payload, nil)
			}
		}
	}
}

func (l *Layer) lastRead() time.Time { return time.Unix(0, l.readAt.Load()) }

// sleep waits d unless the layer closes first.
func (l *Layer) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-l.ctx.Done():
		return false
	}
}

func (l *Layer) release(token string, err error) {
	l.mu.Lock()
	ch := l.waiters[token]
	delete(l.waiters, token)
	l.mu.Unlock()
	if ch != nil {
		ch <- err
	}
}

func (l *Layer) releaseWaiters(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for token, ch := range l.waiters {
		ch <- err
		delete(l.waiters, token)
	}
}

// broker is the Layer as the fanout's Broker.
type broker Layer

func (b *broker) Subscribe(ctx context.Context, channels []string) error {
	// go-redis records the channels before it writes, and subscribes to
	// them again on reconnect: a failed write is an outage, not a failure.
	if err := b.ps.Subscribe(ctx, channels...); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fanout.ErrDown
	}
	return nil
}

func (b *broker) Unsubscribe(ctx context.Context, channels []string) error {
	if err := b.ps.Unsubscribe(ctx, channels...); err != nil {
		return fanout.ErrDown
	}
	return nil
}

// Sync pings on the subscription connection: Redis answers in order, so
// the pong comes after the confirmations of the subscriptions before it,
// which the reader hands to the fanout.
func (b *broker) Sync(ctx context.Context, _ []string) error {
	l := (*Layer)(b)
	if l.down.Load() {
		return fanout.ErrDown
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, l.cfg.Timeout)
		defer cancel()
	}
	ch := make(chan error, 1)
	l.mu.Lock()
	l.nextPing++
	token := syncPing + strconv.FormatUint(l.nextPing, 10)
	l.waiters[token] = ch
	l.mu.Unlock()
	if err := l.ps.Ping(ctx, token); err != nil {
		l.release(token, nil)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fanout.ErrDown
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		l.release(token, nil)
		return ctx.Err()
	case <-l.ctx.Done():
		return fanout.ErrClosed
	}
}

// redact hides a password in a Redis URL.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return strconv.Quote(raw)
	}
	return u.Redacted()
}

// Package nats is a live.Layer over NATS core publish/subscribe, for many
// server processes that share one NATS server or cluster:
//
//	layer, err := nats.New(ctx, nats.Config{URL: "nats://127.0.0.1:4222"})
//	router := live.NewRouter(live.Config{Layer: layer, ...})
//
// Each topic is a subject ("restlive.todolist%2ETask.list_id.14"). A
// process subscribes, on one connection per Layer, to the subjects of the
// topics its receivers joined, and publishes a batch of changes as one
// message per topic. Each process delivers each change once, in publish
// order, however many of its joined topics the change was published to.
//
// When the connection drops, the layer logs it and nats.go reconnects
// with backoff and subscribes again; the layer then delivers a
// live.Delivery whose Missed lists the topics joined at that time, so that
// their subscribers resynchronise. Publish fails while NATS is unreachable.
package nats

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/restlive/restlive/layer"
	"github.com/restlive/restlive/layer/internal/fanout"
	"github.com/restlive/restlive/live"
)

// Config configures a Layer. The zero value connects to a local NATS.
type Config struct {
	// URL is the NATS server, or a comma-separated list of a cluster's
	// servers. Defaults to "nats://127.0.0.1:4222".
	URL string
	// Prefix starts every subject, so that several applications can share
	// one NATS. Defaults to "restlive".
	Prefix string
	// Logger receives connection faults and recoveries. Defaults to
	// slog.Default().
	Logger *slog.Logger
	// Options are passed to nats.Connect before the layer's own, e.g. for
	// credentials or TLS. The layer sets the reconnection handlers, an
	// unlimited number of reconnections, and no reconnect buffer (so that
	// Publish fails during an outage instead of losing changes later).
	Options []natsgo.Option
	// Timeout bounds connecting at start and, when the context passed has
	// no deadline, each Join and Publish. Defaults to 5s.
	Timeout time.Duration
	// ReconnectWait is the wait between two reconnection attempts to one
	// server. Defaults to 500ms.
	ReconnectWait time.Duration
	// BufferSize is how many messages may wait to be read; beyond it NATS
	// drops messages and the layer reports their topics Missed. Defaults
	// to 8192.
	BufferSize int
	// MaxMessageBytes bounds a message; larger batches are split. Defaults
	// to the server's max_payload (1 MiB unless configured).
	MaxMessageBytes int
}

// Layer is a live.Layer over NATS. All methods may be called concurrently.
type Layer struct {
	cfg  Config
	url  string // redacted, for messages
	nc   *natsgo.Conn
	f    *fanout.Fanout
	log  *slog.Logger
	sync string // this layer's own subject for Sync tokens

	msgs chan *natsgo.Msg // every subscription's messages, in arrival order
	ctrl chan func()      // connection events, run by the reader

	mu   sync.Mutex
	subs map[string]*natsgo.Subscription

	closing atomic.Bool
	done    chan struct{}
	wg      sync.WaitGroup
}

var _ live.Layer = (*Layer)(nil)

// Sync tokens: a kind byte and the subjects they confirm, one a line.
const (
	tokenJoin    = 'J'
	tokenRestore = 'R'
)

// New connects to NATS and starts the layer's reader, which Close stops.
// A bad URL or an unreachable server is an error.
func New(ctx context.Context, cfg Config) (*Layer, error) {
	if cfg.URL == "" {
		cfg.URL = natsgo.DefaultURL
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
	if cfg.ReconnectWait <= 0 {
		cfg.ReconnectWait = 500 * time.Millisecond
	}
	if cfg.BufferSize <= 0 {
		cfg.BufferSize = 8192
	}
	shown := redact(cfg.URL)
	if err := fanout.CheckPrefix(cfg.Prefix); err != nil {
		return nil, fmt.Errorf("layer/nats: %w", err)
	}
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, fmt.Errorf("layer/nats: publisher id: %w", err)
	}
	l := &Layer{
		cfg:  cfg,
		url:  shown,
		log:  cfg.Logger,
		sync: fmt.Sprintf("%s._sync.%x", cfg.Prefix, id),
		msgs: make(chan *natsgo.Msg, cfg.BufferSize),
		ctrl: make(chan func(), 16),
		subs: make(map[string]*natsgo.Subscription),
		done: make(chan struct{}),
	}
	// The fanout exists before the connection, whose handlers use it.
	l.f = fanout.New(fanout.Config{
		Name:   "layer/nats",
		Naming: fanout.Naming{Prefix: cfg.Prefix, Sep: '.'},
		Logger: cfg.Logger,
		Broker: (*broker)(l),
	}, binary.LittleEndian.Uint64(id[:]))
	timeout := cfg.Timeout
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(d))
	}
	opts := append(append([]natsgo.Option(nil), cfg.Options...),
		natsgo.Timeout(timeout),
		natsgo.MaxReconnects(-1),
		natsgo.ReconnectWait(cfg.ReconnectWait),
		natsgo.ReconnectBufSize(-1),
		natsgo.DisconnectErrHandler(func(_ *natsgo.Conn, err error) {
			if l.closing.Load() {
				return
			}
			l.log.Warn("layer/nats: connection lost; reconnecting", "url", l.url, "err", err)
			l.event(l.lost)
		}),
		natsgo.ReconnectHandler(func(*natsgo.Conn) { l.event(l.reconnected) }),
		natsgo.ErrorHandler(func(_ *natsgo.Conn, sub *natsgo.Subscription, err error) {
			if sub != nil && errors.Is(err, natsgo.ErrSlowConsumer) {
				subject := sub.Subject
				l.log.Warn("layer/nats: messages dropped: the reader is behind", "subject", subject)
				l.event(func() { l.f.Dropped(subject) })
				return
			}
			l.log.Warn("layer/nats: asynchronous error", "err", err)
		}),
	)
	nc, err := natsgo.Connect(cfg.URL, opts...)
	if err != nil {
		l.f.Close()
		return nil, fmt.Errorf("layer/nats: connect to %s: %w", shown, err)
	}
	l.nc = nc
	if cfg.MaxMessageBytes <= 0 || int64(cfg.MaxMessageBytes) > nc.MaxPayload() {
		l.cfg.MaxMessageBytes = int(nc.MaxPayload())
	}
	// The token subject shares the channel with the topics' subjects, so a
	// token comes in the same order as the messages around it.
	if _, err := nc.ChanSubscribe(l.sync, l.msgs); err != nil {
		l.f.Close()
		nc.Close()
		return nil, fmt.Errorf("layer/nats: subscribe %s: %w", l.sync, err)
	}
	l.wg.Add(1)
	go l.read()
	return l, nil
}

// Publish sends changes to the subjects of their topics, one message per
// topic per batch, and returns when the server has received them all.
func (l *Layer) Publish(ctx context.Context, changes []live.Change) error {
	if len(changes) == 0 {
		return nil
	}
	if l.closing.Load() {
		return fmt.Errorf("layer/nats: publish: %w", fanout.ErrClosed)
	}
	ctx, cancel := l.deadline(ctx)
	defer cancel()
	return l.f.Publish(ctx, changes, l.cfg.MaxMessageBytes, func(ctx context.Context, msgs []fanout.Outgoing) error {
		for _, m := range msgs {
			if err := l.nc.Publish(m.Channel, m.Data); err != nil {
				return l.connErr(err)
			}
		}
		// A published message sits in the client's buffer until written:
		// the round trip makes sure that it reached the server, so that
		// the capture moves its cursor only past what was sent.
		if err := l.nc.FlushWithContext(ctx); err != nil {
			return l.connErr(err)
		}
		return nil
	})
}

func (l *Layer) connErr(err error) error {
	if !l.nc.IsConnected() {
		return fmt.Errorf("connection down: %w", err)
	}
	return err
}

// Stats returns the layer's counters, for metrics: whether the broker
// connection is up, how often it came back, the messages published and
// received, and the drops reported as missed.
func (l *Layer) Stats() layer.Stats { return l.f.Stats() }

// Receive adds a receiver: deliver is called, one call at a time, with the
// changes of the topics the receiver joins. deliver should return soon;
// while receivers are far behind, messages queue up to Config.BufferSize
// and are then dropped and reported Missed. ctx only bounds the call: the
// receiver lives until closed.
func (l *Layer) Receive(_ context.Context, deliver func(live.Delivery)) (live.Receiver, error) {
	return l.f.Receive(deliver)
}

// Close stops the layer: deliveries end and the connection closes.
func (l *Layer) Close() error {
	if l.closing.Swap(true) {
		return nil
	}
	l.nc.Close()
	close(l.done)
	l.wg.Wait()
	l.f.Close()
	return nil
}

// event hands a connection event to the reader, so that it takes its
// place among the messages. Called from nats.go's callback goroutine.
func (l *Layer) event(fn func()) {
	select {
	case l.ctrl <- fn:
	case <-l.done:
	}
}

// read is the one goroutine that hands messages, tokens and connection
// events to the fanout, in the order the connection produced them.
func (l *Layer) read() {
	defer l.wg.Done()
	timer := time.NewTimer(time.Minute)
	defer timer.Stop()
	for {
		select {
		case m := <-l.msgs:
			if m.Subject == l.sync {
				l.token(m.Data)
			} else {
				l.f.Message(m.Subject, string(m.Data))
			}
		case fn := <-l.ctrl:
			fn()
		case <-timer.C:
		case <-l.done:
			return
		}
		timer.Reset(l.f.Expire(time.Now()))
	}
}

func (l *Layer) lost() { l.f.Lost() }

// reconnected runs after nats.go subscribed again: a restore token tells,
// in stream order, when those subscriptions are in effect.
func (l *Layer) reconnected() {
	l.log.Info("layer/nats: reconnected", "url", l.url)
	if err := l.sendToken(tokenRestore, l.f.Joined()); err != nil {
		// Down again: the next reconnection sends another.
		l.log.Debug("layer/nats: send restore token", "err", err)
	}
}

func (l *Layer) sendToken(kind byte, subjects []string) error {
	var b strings.Builder
	b.WriteByte(kind)
	for _, s := range subjects {
		b.WriteByte('\n')
		b.WriteString(s)
	}
	return l.nc.Publish(l.sync, []byte(b.String()))
}

func (l *Layer) token(data []byte) {
	if len(data) == 0 {
		return
	}
	var subjects []string
	if len(data) > 1 {
		subjects = strings.Split(string(data[2:]), "\n")
	}
	// A token may outlive the subscriptions it names (left since): only
	// confirm those still held.
	l.mu.Lock()
	held := subjects[:0]
	for _, s := range subjects {
		if l.subs[s] != nil {
			held = append(held, s)
		}
	}
	l.mu.Unlock()
	l.f.Confirm(held...)
	if data[0] == tokenRestore {
		l.f.Restored()
	}
}

func (l *Layer) deadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, l.cfg.Timeout)
}

// broker is the Layer as the fanout's Broker.
type broker Layer

func (b *broker) Subscribe(_ context.Context, subjects []string) error {
	l := (*Layer)(b)
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, s := range subjects {
		// During an outage nats.go records the subscription and sends it
		// when it reconnects.
		sub, err := l.nc.ChanSubscribe(s, l.msgs)
		if err != nil {
			for _, s := range subjects[:i] {
				l.subs[s].Unsubscribe()
				delete(l.subs, s)
			}
			return fmt.Errorf("subscribe %s: %w", s, err)
		}
		l.subs[s] = sub
	}
	return nil
}

func (b *broker) Unsubscribe(_ context.Context, subjects []string) error {
	l := (*Layer)(b)
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range subjects {
		if sub := l.subs[s]; sub != nil {
			// Removes the subscription locally at once, so no message of
			// it is read afterwards even if the server is unreachable.
			sub.Unsubscribe()
			delete(l.subs, s)
		}
	}
	return nil
}

// Sync flushes: the server answers a ping after it has processed the
// subscriptions sent before it. A token then marks the point in the
// message stream where they are in effect.
func (b *broker) Sync(ctx context.Context, subjects []string) error {
	l := (*Layer)(b)
	if !l.nc.IsConnected() {
		return fanout.ErrDown
	}
	ctx, cancel := l.deadline(ctx)
	defer cancel()
	if err := l.nc.FlushWithContext(ctx); err != nil {
		if !l.nc.IsConnected() {
			return fanout.ErrDown
		}
		return err
	}
	if err := l.sendToken(tokenJoin, subjects); err != nil && !l.nc.IsConnected() {
		return fanout.ErrDown
	}
	return nil
}

// redact hides passwords and tokens in a list of NATS URLs.
func redact(raw string) string {
	parts := strings.Split(raw, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil {
			parts[i] = strconv.Quote(p)
			continue
		}
		if u.User != nil {
			if _, ok := u.User.Password(); !ok {
				// A bare token in the user part is a secret too.
				u.User = url.User("xxxxx")
			}
		}
		parts[i] = u.Redacted()
	}
	return strings.Join(parts, ",")
}

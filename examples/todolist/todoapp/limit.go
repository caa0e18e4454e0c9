package todoapp

import (
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// defaultLoginRate is how many logins and registrations per second an
// address may try by default (see Config.LoginRate). Each try costs a
// bcrypt, about 50 ms of a core: without a bound, 30 tries a second fill
// two cores.
const defaultLoginRate = 0.5

// limiter holds a token bucket per key (an address, a username). Keys
// whose bucket has refilled are forgotten once the map is large, so that
// a client cannot grow it without bound by trying new keys. A nil limiter
// limits nothing.
type limiter struct {
	rate  rate.Limit
	burst int

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
}

// maxBuckets bounds the keys a limiter keeps; beyond it, the idle ones
// are swept, and if none is, new keys share one bucket.
const maxBuckets = 10_000

func newLimiter(r float64, burst int) *limiter {
	if r < 0 {
		return nil
	}
	return &limiter{rate: rate.Limit(r), burst: burst, buckets: make(map[string]*rate.Limiter)}
}

// take spends a token of key's bucket, and returns 0, or how long to wait
// for one when the bucket is empty.
func (l *limiter) take(key string) time.Duration {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			l.sweep()
		}
		if len(l.buckets) >= maxBuckets {
			key = "" // the overflow: many keys at once share a bucket
			b = l.buckets[key]
		}
		if b == nil {
			b = rate.NewLimiter(l.rate, l.burst)
			l.buckets[key] = b
		}
	}
	r := b.Reserve()
	if d := r.Delay(); d > 0 {
		r.Cancel() // refused tries cost nothing
		return d
	}
	return 0
}

// sweep forgets the buckets that are full again: their keys are idle.
func (l *limiter) sweep() {
	now := time.Now()
	for k, b := range l.buckets {
		if b.TokensAt(now) >= float64(l.burst) {
			delete(l.buckets, k)
		}
	}
}

// limited answers 429 to an address that tries next too often.
func (a *auth) limited(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = r.RemoteAddr
		}
		if wait := a.byAddress.take(host); wait > 0 {
			tooMany(w, wait)
			return
		}
		next(w, r)
	}
}

// tooMany answers 429 with Retry-After, in whole seconds.
func tooMany(w http.ResponseWriter, wait time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
	writeJSON(w, http.StatusTooManyRequests, map[string]string{"detail": "Request was throttled. Expected available in " + strconv.Itoa(int(math.Ceil(wait.Seconds()))) + " seconds."})
}

package todoapp

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
	"gorm.io/gorm"

	"github.com/restlive/restlive/gormlive"
	"github.com/restlive/restlive/live"
)

// Users log in with a username and a password, stored as a bcrypt hash. A
// user then proves who they are with a token (the Authorization header,
// for scripts and the page's REST calls) or a session cookie (for the
// WebSocket, which a browser opens without custom headers). Both are
// random secrets of which the database keeps only a SHA-256 hash, so a
// copy of the database lets no one log in.

// User is an account.
type User struct {
	ID           uint      `gorm:"primaryKey"`
	Username     string    `gorm:"size:150;not null;uniqueIndex"`
	PasswordHash []byte    `gorm:"not null"`
	CreatedAt    time.Time `gorm:"not null"`
}

// Credential is a token or a session: a secret that stands for its user
// until it expires or is revoked by logging out.
type Credential struct {
	// Hash is the hex SHA-256 of the secret.
	Hash      string    `gorm:"primaryKey;size:64"`
	UserID    uint      `gorm:"not null;index"`
	User      *User     `gorm:"constraint:OnDelete:CASCADE"`
	Kind      string    `gorm:"size:16;not null"`
	CreatedAt time.Time `gorm:"not null"`
	ExpiresAt time.Time `gorm:"not null;index"`
}

// The kinds of Credential.
const (
	kindToken   = "token"
	kindSession = "session"
)

const (
	// sessionCookie names the session cookie, as Django does.
	sessionCookie = "sessionid"
	sessionTTL    = 14 * 24 * time.Hour
	tokenTTL      = 90 * 24 * time.Hour
	// maxAuthBody bounds the JSON body of register and login.
	maxAuthBody = 16 << 10
)

// usernamePattern is Django's: letters, digits and @.+-_.
var usernamePattern = regexp.MustCompile(`^[\pL\pN@.+_-]{1,150}$`)

// auth issues, checks and revokes credentials. Its methods may be called
// concurrently.
type auth struct {
	// router closes the WebSockets of a user who logs out.
	router *live.Router
	// byAddress and byUsername bound the logins and registrations one
	// address, and the logins one username, may try: each costs a bcrypt.
	byAddress, byUsername *limiter
	db                    *gorm.DB
	log                   *slog.Logger
	cost                  int
	// dummyHash is compared against when the username is unknown, so that
	// a login takes as long whether or not the user exists.
	dummyHash []byte
	now       func() time.Time
}

func newAuth(db *gorm.DB, log *slog.Logger, cost int, loginRate float64) (*auth, error) {
	dummy, err := bcrypt.GenerateFromPassword([]byte("not a password of anyone"), cost)
	if err != nil {
		return nil, err
	}
	if loginRate == 0 {
		loginRate = defaultLoginRate
	}
	return &auth{
		db: db, log: log, cost: cost, dummyHash: dummy, now: time.Now,
		byAddress:  newLimiter(loginRate, 10),
		byUsername: newLimiter(loginRate/5, 5),
	}, nil
}

// identify is the Authenticate func of the REST handlers and the
// live.Router, the one place that decides who makes a request: the user
// of its token (the Authorization header, or the WebSocket subprotocol a
// browser's page offers it in), else of its session cookie. A token that
// names no one is refused with 401, as in Django REST Framework, so that a
// client with a stale token learns it rather than silently seeing only
// public data; a stale session cookie is ignored, as Django ignores it.
// The credential's expiry bounds how long a WebSocket stays open on it.
func (a *auth) identify(r *http.Request) (live.Identity, error) {
	u, expires, err := a.requestUser(r)
	if errors.Is(err, errBadToken) {
		return live.Identity{}, live.Errorf(http.StatusUnauthorized, "Invalid token.")
	}
	if err != nil || u == nil {
		return live.Identity{}, err
	}
	if info, ok := r.Context().Value(requestInfoKey{}).(*requestInfo); ok {
		info.user = u.Username
	}
	return live.Identity{User: u, ID: strconv.FormatUint(uint64(u.ID), 10), Expires: expires}, nil
}

// userOf returns the user identify found, or nil.
func userOf(user any) *User {
	u, _ := user.(*User)
	return u
}

// errBadToken is answered 401 with DRF's message for it, "Invalid token.".
var errBadToken = errors.New("invalid token")

// requestUser returns the user r's token names, else the user of its
// session cookie, else nil, and when the credential expires.
func (a *auth) requestUser(r *http.Request) (*User, time.Time, error) {
	token, hasToken := live.TokenFromRequest(r), false
	if token != "" {
		hasToken = true
	} else if h := r.Header.Get("Authorization"); h != "" {
		scheme, t, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "Token") || t == "" {
			return nil, time.Time{}, errBadToken
		}
		token, hasToken = strings.TrimSpace(t), true
	}
	if hasToken {
		u, expires, err := a.lookup(r.Context(), kindToken, token)
		if err == nil && u == nil {
			err = errBadToken
		}
		return u, expires, err
	}
	if c, err := r.Cookie(sessionCookie); err == nil && c.Value != "" {
		return a.lookup(r.Context(), kindSession, c.Value)
	}
	return nil, time.Time{}, nil
}

// lookup returns the user of an unexpired credential, or nil, and when
// the credential expires.
func (a *auth) lookup(ctx context.Context, kind, secret string) (*User, time.Time, error) {
	var found struct {
		User
		ExpiresAt time.Time
	}
	err := a.db.WithContext(ctx).Model(&User{}).
		Select("users.*, credentials.expires_at").
		Joins("JOIN credentials ON credentials.user_id = users.id").
		Where("credentials.hash = ? AND credentials.kind = ? AND credentials.expires_at > ?", hashSecret(secret), kind, a.now()).
		Take(&found).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, time.Time{}, nil
	}
	if err != nil {
		return nil, time.Time{}, err
	}
	return &found.User, found.ExpiresAt, nil
}

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// issue stores a new credential of kind for u and returns its secret.
func (a *auth) issue(ctx context.Context, u *User, kind string, ttl time.Duration) (string, error) {
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	secret := hex.EncodeToString(b)
	now := a.now()
	c := Credential{Hash: hashSecret(secret), UserID: u.ID, Kind: kind, CreatedAt: now, ExpiresAt: now.Add(ttl)}
	if err := a.db.WithContext(ctx).Create(&c).Error; err != nil {
		return "", err
	}
	return secret, nil
}

// credentials is the body of register and login.
type credentials struct {
	Username *string `json:"username"`
	Password *string `json:"password"`
}

// readCredentials decodes and checks a register or login body, answering
// the client itself when it is not acceptable.
func (a *auth) readCredentials(w http.ResponseWriter, r *http.Request) (username, password string, ok bool) {
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		// Requiring JSON keeps cross-site HTML forms, which cannot send it,
		// from logging a browser in as someone else.
		writeJSON(w, http.StatusUnsupportedMediaType, map[string]string{"detail": `Unsupported media type; send "application/json".`})
		return "", "", false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAuthBody))
	if err != nil {
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"detail": "Request body too large."})
		return "", "", false
	}
	var in credentials
	if err := gormlive.DecodeJSON(body, &in); err != nil {
		a.writeError(w, r, err)
		return "", "", false
	}
	errs := gormlive.FieldErrors{}
	if in.Username == nil || *in.Username == "" {
		errs.Add("username", "This field is required.")
	}
	if in.Password == nil || *in.Password == "" {
		errs.Add("password", "This field is required.")
	}
	if len(errs) > 0 {
		writeJSON(w, http.StatusBadRequest, errs)
		return "", "", false
	}
	return *in.Username, *in.Password, true
}

// register creates a user: 201 {"id","username","token"}.
func (a *auth) register(w http.ResponseWriter, r *http.Request) {
	username, password, ok := a.readCredentials(w, r)
	if !ok {
		return
	}
	errs := gormlive.FieldErrors{}
	if !usernamePattern.MatchString(username) {
		errs.Add("username", "Enter a valid username of at most 150 letters, digits and @/./+/-/_ characters.")
	}
	if len(password) < 8 {
		errs.Add("password", "This password is too short. It must contain at least 8 characters.")
	} else if len(password) > 72 {
		// bcrypt reads no further than 72 bytes.
		errs.Add("password", "This password is too long. It must contain at most 72 bytes.")
	}
	if len(errs) > 0 {
		writeJSON(w, http.StatusBadRequest, errs)
		return
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), a.cost)
	if err != nil {
		a.serverError(w, r, "hash password", err)
		return
	}
	u := User{Username: username, PasswordHash: hash, CreatedAt: a.now()}
	var token string
	err = a.db.WithContext(r.Context()).Transaction(func(tx *gorm.DB) error {
		// The unique index, not a prior look-up, decides who gets a
		// username two clients register at once (the DB's gorm.Config
		// has TranslateError).
		if err := tx.Create(&u).Error; err != nil {
			return err
		}
		var err error
		token, err = (&auth{db: tx, now: a.now}).issue(r.Context(), &u, kindToken, tokenTTL)
		return err
	})
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		writeJSON(w, http.StatusBadRequest, gormlive.FieldErrors{"username": {"A user with that username already exists."}})
		return
	}
	if err != nil {
		a.serverError(w, r, "register", err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"id": u.ID, "username": u.Username, "token": token})
}

// login checks a username and password: it answers {"token","id",
// "username"} with a new token, and sets a session cookie.
func (a *auth) login(w http.ResponseWriter, r *http.Request) {
	username, password, ok := a.readCredentials(w, r)
	if !ok {
		return
	}
	if wait := a.byUsername.take(strings.ToLower(username)); wait > 0 {
		tooMany(w, wait)
		return
	}
	var u User
	err := a.db.WithContext(r.Context()).Where("username = ?", username).Take(&u).Error
	if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
		a.serverError(w, r, "find user", err)
		return
	}
	hash := u.PasswordHash
	if err != nil {
		hash = a.dummyHash
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil || err != nil {
		// Django REST Framework's obtain_auth_token answers a failed login
		// with 400, not 401: the request was understood and refused.
		writeJSON(w, http.StatusBadRequest, gormlive.FieldErrors{gormlive.NonFieldErrors: {"Unable to log in with provided credentials."}})
		return
	}
	// Expired credentials of anyone are swept here, the moment when one
	// more is added.
	if err := a.db.WithContext(r.Context()).Where("expires_at <= ?", a.now()).Delete(&Credential{}).Error; err != nil {
		a.serverError(w, r, "sweep credentials", err)
		return
	}
	token, err := a.issue(r.Context(), &u, kindToken, tokenTTL)
	if err != nil {
		a.serverError(w, r, "issue token", err)
		return
	}
	session, err := a.issue(r.Context(), &u, kindSession, sessionTTL)
	if err != nil {
		a.serverError(w, r, "issue session", err)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: session, Path: "/",
		MaxAge: int(sessionTTL / time.Second), HttpOnly: true, SameSite: http.SameSiteLaxMode,
		// Not Secure: the example serves plain HTTP on loopback. Behind
		// HTTPS, set it.
	})
	writeJSON(w, http.StatusOK, map[string]any{"token": token, "id": u.ID, "username": u.Username})
}

// logout revokes the credentials the request carries, its token and its
// session, expires the cookie, and closes the user's WebSockets, so that
// none opened before keeps receiving their private data: 204 whether or
// not the credentials were valid. It wants a JSON body, as every write
// does: a cross-site HTML form, which cannot send one, cannot log a user
// out.
func (a *auth) logout(w http.ResponseWriter, r *http.Request) {
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		writeJSON(w, http.StatusUnsupportedMediaType, map[string]string{"detail": `Unsupported media type; send "application/json".`})
		return
	}
	u, _, err := a.requestUser(r)
	if err != nil && !errors.Is(err, errBadToken) {
		a.serverError(w, r, "logout", err)
		return
	}
	var hashes []string
	if token := live.TokenFromRequest(r); token != "" {
		hashes = append(hashes, hashSecret(token))
	}
	if scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " "); strings.EqualFold(scheme, "Token") && token != "" {
		hashes = append(hashes, hashSecret(strings.TrimSpace(token)))
	}
	if c, err := r.Cookie(sessionCookie); err == nil && c.Value != "" {
		hashes = append(hashes, hashSecret(c.Value))
	}
	if len(hashes) > 0 {
		if err := a.db.WithContext(r.Context()).Where("hash IN ?", hashes).Delete(&Credential{}).Error; err != nil {
			a.serverError(w, r, "logout", err)
			return
		}
	}
	if u != nil && a.router != nil {
		// The user's other sessions reconnect and authenticate again;
		// this one no longer can.
		if err := a.router.Disconnect(r.Context(), strconv.FormatUint(uint64(u.ID), 10)); err != nil {
			a.log.WarnContext(r.Context(), "todolist: close the user's sockets", "err", err)
		}
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	w.WriteHeader(http.StatusNoContent)
}

// writeJSON answers code with v as JSON.
func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "cannot encode the response", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(b)
}

// writeError answers a decoding error: 400 with field errors, or the
// error's code and detail.
func (a *auth) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var fe gormlive.FieldErrors
	var le *live.Error
	switch {
	case errors.As(err, &fe):
		writeJSON(w, http.StatusBadRequest, fe)
	case errors.As(err, &le):
		writeJSON(w, le.Code, map[string]string{"detail": le.Message})
	default:
		a.serverError(w, r, "decode body", err)
	}
}

// serverError answers 500 without detail and logs what failed.
func (a *auth) serverError(w http.ResponseWriter, r *http.Request, what string, err error) {
	if r.Context().Err() != nil {
		return // the client has gone: nobody to answer, nothing failed here
	}
	a.log.ErrorContext(r.Context(), "todolist: "+what, "err", err, "path", r.URL.Path)
	writeJSON(w, http.StatusInternalServerError, map[string]string{"detail": "A server error occurred."})
}

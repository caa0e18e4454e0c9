package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"

	"gorm.io/gorm"

	"github.com/restlive/restlive/gormlive"
	"github.com/restlive/restlive/live"
)

// page is one page of a list, as Django REST Framework's
// LimitOffsetPagination serves it.
type page struct {
	limit, offset int
	count         int64
	results       []byte // the encoded instances, joined by commas
	n             int    // how many
}

// page reads ?limit= and ?offset=. Values that are not positive integers
// are ignored, and a limit beyond the view's maximum is the maximum, as in
// Django REST Framework.
func (h *handler[M]) page(r *http.Request) *page {
	p := &page{limit: h.pageSize}
	q := r.URL.Query()
	if n, err := strconv.Atoi(q.Get("limit")); err == nil && n > 0 {
		p.limit = min(n, h.maxPageSize)
	}
	if n, err := strconv.Atoi(q.Get("offset")); err == nil && n > 0 {
		p.offset = n
	}
	return p
}

// paginate fills p from qs, the ordered queryset. Without PermitObject the
// database counts and cuts the page; with it, what the request sees is
// known only row by row, so the rows are streamed and counted as they come
// (one query, memory for one page).
func (h *handler[M]) paginate(ctx context.Context, req *live.Request, qs *gorm.DB, p *page) error {
	if h.view.PermitObject == nil {
		if err := gormlive.DB(ctx, h.view.DB).Table("(?) AS page", qs).Count(&p.count).Error; err != nil {
			return err
		}
		var ms []M
		if err := qs.Limit(p.limit).Offset(p.offset).Find(&ms).Error; err != nil {
			return err
		}
		for i := range ms {
			b, err := h.view.Encode(ctx, req, &ms[i])
			if err != nil {
				return err
			}
			p.add(b)
		}
		return nil
	}
	rows, err := qs.Rows()
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		m := new(M)
		if err := qs.ScanRows(rows, m); err != nil {
			return err
		}
		if err := h.permitObject(ctx, req, live.ActionList, m); err != nil {
			if err = hidden(err); err != live.ErrNotFound {
				return err
			}
			continue
		}
		p.count++
		if p.count > int64(p.offset) && p.n < p.limit {
			b, err := h.view.Encode(ctx, req, m)
			if err != nil {
				return err
			}
			p.add(b)
		}
	}
	return rows.Err()
}

// add appends an encoded instance to the page.
func (p *page) add(instance []byte) {
	if p.n > 0 {
		p.results = append(p.results, ',')
	}
	p.results = append(p.results, instance...)
	p.n++
}

// body returns the page as JSON, with the URLs of the pages around it.
func (p *page) body(r *http.Request) []byte {
	b := []byte(`{"count":`)
	b = strconv.AppendInt(b, p.count, 10)
	b = append(b, `,"next":`...)
	if next := p.offset + p.limit; int64(next) < p.count {
		b = appendURL(b, r, p.limit, next)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"previous":`...)
	if p.offset > 0 {
		b = appendURL(b, r, p.limit, max(0, p.offset-p.limit))
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"results":[`...)
	b = append(b, p.results...)
	return append(b, "]}"...)
}

// appendURL appends, as a JSON string, the absolute URL of the request
// with limit and offset (left out when 0, as Django REST Framework does).
func appendURL(b []byte, r *http.Request, limit, offset int) []byte {
	u, err := url.ParseRequestURI(r.RequestURI)
	if err != nil {
		u = &url.URL{Path: r.URL.Path, RawQuery: r.URL.RawQuery}
	}
	u.Scheme, u.Host = "http", r.Host
	if r.TLS != nil {
		u.Scheme = "https"
	}
	q := u.Query()
	q.Set("limit", strconv.Itoa(limit))
	if offset > 0 {
		q.Set("offset", strconv.Itoa(offset))
	} else {
		q.Del("offset")
	}
	u.RawQuery = q.Encode()
	// Without HTML escaping, "&" stays "&", as Django REST Framework
	// writes it.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(u.String()) // a string always encodes
	return append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
}

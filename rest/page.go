package rest

import (
	"context"
	"net/http"

	"gorm.io/gorm"

	"github.com/restlive/restlive/gormlive"
	"github.com/restlive/restlive/live"
	"github.com/restlive/restlive/rest/drf"
)

// page is one page of a list, as Django REST Framework's
// LimitOffsetPagination serves it.
type page struct {
	limit, offset int
	count         int64
	results       []byte // the encoded instances, joined by commas
	n             int    // how many
}

// page reads ?limit= and ?offset= (see drf.Limits).
func (h *handler[M]) page(r *http.Request) *page {
	p := &page{}
	p.limit, p.offset = drf.Limits(r, h.pageSize, h.maxPageSize)
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
	return drf.Page(r, p.count, p.limit, p.offset, p.results)
}

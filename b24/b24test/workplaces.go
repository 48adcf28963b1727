package b24test

import (
	"net/http"
	"sort"
	"strings"
)

func workplaceMap(w Workplace) map[string]any {
	ids := make([]any, len(w.TypeIDs))
	for i, id := range w.TypeIDs {
		ids[i] = id
	}
	return map[string]any{"id": w.ID, "title": w.Title, "typeIds": ids}
}

func (p *Portal) automatedSolutionAdd(in params) (any, *page, *apiError) {
	fields := asMap(in["fields"])
	title := strings.TrimSpace(asString(fields["title"]))
	if title == "" {
		return nil, nil, &apiError{http.StatusBadRequest, "BX_EMPTY_REQUIRED", DescNoTitle}
	}
	typeIDs, ok := asIntList(fields["typeIds"])
	if !ok {
		return nil, nil, &apiError{http.StatusBadRequest, "BX_INVALID_VALUE", "Invalid value of field «typeIds»"}
	}
	if p.cfg.WorkplaceCap > 0 && len(p.wps) >= p.cfg.WorkplaceCap {
		return nil, nil, &apiError{http.StatusBadRequest, "LIMIT_EXCEEDED", DescCapExceeded}
	}
	for _, w := range p.wps {
		if w.Title == title {
			p.stats.DuplicateWorkplaces++
			break
		}
	}
	w := Workplace{ID: p.nextWP, Title: title, TypeIDs: append([]int64{}, typeIDs...)}
	p.nextWP++
	p.wps = append(p.wps, w)
	p.stats.WorkplacesCreated++
	return map[string]any{"automatedSolution": workplaceMap(w)}, nil, nil
}

func (p *Portal) automatedSolutionList(in params) (any, *page, *apiError) {
	filter := asMap(in["filter"])
	var match []Workplace
	for _, w := range p.wps {
		if v, ok := firstKey(filter, "title", "=title"); ok && asString(v) != w.Title {
			continue
		}
		if v, ok := firstKey(filter, "id", "=id"); ok {
			if n, _ := asInt(v); n != w.ID {
				continue
			}
		}
		match = append(match, w)
	}
	order := asMap(in["order"])
	if dir, ok := firstKey(order, "id", "ID"); ok && strings.EqualFold(asString(dir), "desc") {
		sort.SliceStable(match, func(i, j int) bool { return match[i].ID > match[j].ID })
	} else if dir, ok := firstKey(order, "title"); ok {
		desc := strings.EqualFold(asString(dir), "desc")
		sort.SliceStable(match, func(i, j int) bool {
			if desc {
				return match[i].Title > match[j].Title
			}
			return match[i].Title < match[j].Title
		})
	}
	lo, hi, pg := paginate(len(match), in.start())
	list := make([]any, 0, hi-lo)
	for _, w := range match[lo:hi] {
		list = append(list, workplaceMap(w))
	}
	return map[string]any{"automatedSolutions": list}, pg, nil
}

func firstKey(m map[string]any, keys ...string) (any, bool) {
	for _, k := range keys {
		if v, ok := m[k]; ok {
			return v, true
		}
	}
	return nil, false
}

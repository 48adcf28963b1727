package b24test

import "strings"

// SeedDepartment adds a department as if it had existed before the test
// (made by people, another app or an earlier import): it bypasses the
// limits and is not counted in Stats.DepartmentsCreated, but a client that
// later creates another department with the same NAME under the same PARENT
// counts as a duplicate. parent must exist (1 is the root); sort 0 means
// the portal's default 500. It returns the department's ID, or 0 when parent
// does not exist or name is empty.
func (p *Portal) SeedDepartment(name string, parent int64, sort int, head int64) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	name = strings.TrimSpace(name)
	if name == "" || p.deptIndex(parent) < 0 {
		return 0
	}
	if sort == 0 {
		sort = 500
	}
	d := Department{ID: p.nextDept, Name: name, Sort: sort, Parent: parent, Head: head}
	p.deptNames[deptKey{parent: d.Parent, name: d.Name}] = true
	p.nextDept++
	p.depts = append(p.depts, d)
	return d.ID
}

// SeedWorkplace adds a digital workplace as if it had existed before the
// test, like SeedDepartment (not counted in Stats.WorkplacesCreated). It
// returns its ID, or 0 for an empty title.
func (p *Portal) SeedWorkplace(title string, typeIDs ...int64) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	title = strings.TrimSpace(title)
	if title == "" {
		return 0
	}
	w := Workplace{ID: p.nextWP, Title: title, TypeIDs: append([]int64{}, typeIDs...)}
	p.nextWP++
	p.wps = append(p.wps, w)
	return w.ID
}

// Install issues a new OAuth token pair, valid from now, as installing the
// application again delivers it (for example after the old refresh token
// was refused). It clears a refusal of refresh tokens set with
// SetRefreshRevoked, as a reinstall does.
func (p *Portal) Install() (accessToken, refreshToken string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	accessToken, refreshToken = randomHex(16), randomHex(16)
	p.access[accessToken] = p.cfg.Clock().Add(p.cfg.OAuth.AccessTTL)
	p.refresh[refreshToken] = true
	p.cond.RefreshRevoked = false
	return accessToken, refreshToken
}

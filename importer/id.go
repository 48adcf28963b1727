package importer

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
)

// ErrInvalidID: an import ID does not match [ValidateID]'s rule.
var ErrInvalidID = errors.New("invalid import ID")

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ValidateID checks an import ID: 1 to 128 characters of ASCII letters,
// digits, '.', '_' and '-', starting with a letter or digit. The rule keeps
// IDs safe inside Redis hash tags and task IDs ("import:ID:KEY" is then
// unambiguous, as an ID holds no ':'). IDs from [ID] and [File.ID] always
// pass. The error wraps [ErrInvalidID].
func ValidateID(id string) error {
	if !idPattern.MatchString(id) {
		return fmt.Errorf("%w %q: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit", ErrInvalidID, id)
	}
	return nil
}

// ID is an import ID derived from the exact bytes of a file: "imp-" and the
// first 16 hex digits of their SHA-256. The same bytes always give the same
// ID; any change, even white space or a comment, gives another. Prefer
// [File.ID], which survives reformatting.
func ID(raw []byte) string {
	sum := sha256.Sum256(raw)
	return "imp-" + hex.EncodeToString(sum[:8])
}

// ID is an import ID derived from the file's content, not its bytes: "imp-"
// and the first 16 hex digits of the SHA-256 of a canonical encoding of the
// departments and workplaces, in file order, with every field except Line.
// The same org structure gives the same ID whether it comes as YAML, JSON or
// CSV, indented or not, with or without comments, with keys derived or
// spelled out; reordering rows or changing any value gives another ID. This
// is what `enqueue import` uses without --id, so that re-running a file (or
// POSTing the same content to the HTTP API) is recognised as the same import.
func (f *File) ID() string {
	h := sha256.New()
	var buf []byte
	str := func(s string) {
		buf = binary.AppendUvarint(buf, uint64(len(s)))
		buf = append(buf, s...)
	}
	num := func(n int64) { str(strconv.FormatInt(n, 10)) }
	flush := func() {
		h.Write(buf)
		buf = buf[:0]
	}
	str("b24queue import v1")
	for _, d := range f.Departments {
		str("D")
		str(d.Key)
		str(d.Name)
		str(d.Parent)
		if d.ParentID == nil {
			str("-")
		} else {
			num(*d.ParentID)
		}
		num(int64(d.Sort))
		num(d.Head)
		flush()
	}
	for _, w := range f.Workplaces {
		str("W")
		str(w.Key)
		str(w.Title)
		num(int64(len(w.TypeIDs)))
		for _, id := range w.TypeIDs {
			num(id)
		}
		flush()
	}
	flush()
	return "imp-" + hex.EncodeToString(h.Sum(nil)[:8])
}

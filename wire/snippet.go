package wire

import "unicode/utf8"

// SnippetLen bounds how much of a bad input goes into a log line or an
// error text: enough to recognise it (a method name, an endpoint, a
// protocol's first bytes), never a whole payload.
const SnippetLen = 64

// Snippet returns at most SnippetLen bytes of b, cut on a rune boundary,
// with "..." appended when it was longer: for quoting bad input with %q.
func Snippet[T ~string | ~[]byte](b T) string {
	if len(b) <= SnippetLen {
		return string(b)
	}
	return Cut(string(b[:SnippetLen+1]), SnippetLen) + "..."
}

// Cut cuts s to at most n bytes, on a rune boundary.
func Cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

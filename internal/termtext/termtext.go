// Package termtext makes text that came from outside (a registry, a tar,
// the Docker engine, a file) safe for a terminal or a log line: one rule of
// what a terminal would act on, and two ways to show such text, escaped
// where it is the content being looked at, removed where it only explains.
package termtext

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// unsafe reports whether a terminal would act on r rather than show it:
// control characters (ESC, CR, tab, C1) and invisible format characters
// (bidirectional overrides, zero-width marks).
func unsafe(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r)
}

// Escape writes what a terminal would act on in s, and invalid UTF-8, as Go
// escapes (\x1b, \u202e), so that a view shows what is there and the text
// cannot clear the screen or fake a line.
func Escape(s string) string {
	if !strings.ContainsFunc(s, unsafe) && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], string(utf8.RuneError)):
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unsafe(r):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// escapePattern finds terminal escape sequences: CSI (colours, cursor
// moves), OSC (window titles, hyperlinks) and two-byte escapes, written
// with ESC or as their C1 characters (U+009B CSI, U+009D OSC).
var escapePattern = regexp.MustCompile(`\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]|\x{9b}[0-?]*[ -/]*[@-~]|\x{9d}[^\x07\x1b\x{9c}]*(?:\x07|\x1b\\|\x{9c})?`)

// Line makes s one line of at most max bytes (cut with "..."): secrets
// redacted (Redact), escape sequences and what a terminal would act on
// removed, invalid UTF-8 dropped, whitespace folded. For text that explains
// (a registry's error message), where the escapes themselves would only be
// noise.
func Line(s string, max int) string {
	s = Redact(strings.ToValidUTF8(s, ""))
	s = escapePattern.ReplaceAllString(s, "")
	s = strings.Map(func(r rune) rune {
		switch {
		case unicode.IsSpace(r):
			return ' '
		case unsafe(r):
			return -1
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		s = strings.ToValidUTF8(s[:max], "") + "..."
	}
	return s
}

// EscapeLines is Escape for text of several lines (an error joined from
// others, a log): each line escaped, the line breaks kept.
func EscapeLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = Escape(l)
	}
	return strings.Join(lines, "\n")
}

// urlQueryPattern finds the query (and fragment) of an http(s) URL in text.
var urlQueryPattern = regexp.MustCompile(`(?i)(\bhttps?://[^\s"'<>?#]*)[?#][^\s"'<>]*`)

// secretParamPattern finds a query parameter that carries a signature or a
// token (pre-signed object storage URLs, token endpoints) outside a URL.
var secretParamPattern = regexp.MustCompile(`(?i)\b((?:x-amz-|x-goog-)?(?:signature|credential|security-token)|sig|token|access_token|refresh_token|password|key-pair-id|policy)=[^\s&"'<>,;]+`)

// Redact removes what may be a secret from text that names URLs: the query
// of every http(s) URL (a redirect to object storage carries its signature
// there), and the value of any signature, credential or token parameter
// left elsewhere ("sig=REDACTED").
func Redact(s string) string {
	if !strings.Contains(s, "://") && !strings.Contains(s, "=") {
		return s
	}
	s = urlQueryPattern.ReplaceAllString(s, "$1")
	return secretParamPattern.ReplaceAllString(s, "$1=REDACTED")
}

// Message is text from outside made fit for a terminal or a log line, line
// by line: secrets redacted (Redact), then escaped (EscapeLines).
func Message(s string) string {
	return EscapeLines(Redact(s))
}

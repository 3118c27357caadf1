package soql

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

type tokenKind int

const (
	tokEOF tokenKind = iota
	tokIdent
	tokString
	tokNumber
	tokDate
	tokDateTime
	tokComma
	tokDot
	tokLParen
	tokRParen
	tokColon
	tokOp // = != <> < <= > >=
)

type token struct {
	kind tokenKind
	// text is the token as written in the statement (for a string, without the quotes).
	text string
	// str is a string literal's decoded value.
	str string
	pos int
}

// describe renders a token for an "unexpected token" message the way Salesforce does.
func (t token) describe() string {
	switch t.kind {
	case tokEOF:
		return "<EOF>"
	case tokString:
		return "'" + t.text + "'"
	default:
		return t.text
	}
}

func isIdentStart(c byte) bool {
	return c == '_' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

func isIdentPart(c byte) bool { return isIdentStart(c) || isDigit(c) }

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// lex splits a statement into tokens.
func lex(src string) ([]token, error) {
	var toks []token
	i := 0
	for {
		for i < len(src) && (src[i] == ' ' || src[i] == '\t' || src[i] == '\n' || src[i] == '\r' || src[i] == '\f') {
			i++
		}
		if i >= len(src) {
			toks = append(toks, token{kind: tokEOF, pos: len(src)})
			return toks, nil
		}
		start := i
		c := src[i]
		switch {
		case isIdentStart(c):
			for i < len(src) && isIdentPart(src[i]) {
				i++
			}
			toks = append(toks, token{kind: tokIdent, text: src[start:i], pos: start})
		case isDigit(c) || ((c == '-' || c == '+') && i+1 < len(src) && isDigit(src[i+1])):
			tok, n, err := lexNumberOrDate(src, start)
			if err != nil {
				return nil, err
			}
			toks = append(toks, tok)
			i = n
		case c == '\'':
			tok, n, err := lexString(src, start)
			if err != nil {
				return nil, err
			}
			toks = append(toks, tok)
			i = n
		case c == ',':
			toks = append(toks, token{kind: tokComma, text: ",", pos: start})
			i++
		case c == '.':
			toks = append(toks, token{kind: tokDot, text: ".", pos: start})
			i++
		case c == '(':
			toks = append(toks, token{kind: tokLParen, text: "(", pos: start})
			i++
		case c == ')':
			toks = append(toks, token{kind: tokRParen, text: ")", pos: start})
			i++
		case c == ':':
			toks = append(toks, token{kind: tokColon, text: ":", pos: start})
			i++
		case c == '=':
			toks = append(toks, token{kind: tokOp, text: "=", pos: start})
			i++
		case c == '!':
			if i+1 < len(src) && src[i+1] == '=' {
				toks = append(toks, token{kind: tokOp, text: "!=", pos: start})
				i += 2
				continue
			}
			return nil, noViable(src, start)
		case c == '<':
			switch {
			case i+1 < len(src) && src[i+1] == '=':
				toks = append(toks, token{kind: tokOp, text: "<=", pos: start})
				i += 2
			case i+1 < len(src) && src[i+1] == '>':
				toks = append(toks, token{kind: tokOp, text: "<>", pos: start})
				i += 2
			default:
				toks = append(toks, token{kind: tokOp, text: "<", pos: start})
				i++
			}
		case c == '>':
			if i+1 < len(src) && src[i+1] == '=' {
				toks = append(toks, token{kind: tokOp, text: ">=", pos: start})
				i += 2
			} else {
				toks = append(toks, token{kind: tokOp, text: ">", pos: start})
				i++
			}
		default:
			return nil, noViable(src, start)
		}
	}
}

func noViable(src string, pos int) *Error {
	r, _ := utf8.DecodeRuneInString(src[pos:])
	return malformed(pos, "line 1:%d no viable alternative at character '%c'", pos, r)
}

// lexNumberOrDate reads a number (optionally signed, optionally with a fraction), a date
// (2024-01-02) or a datetime (2024-01-02T03:04:05Z, with optional milliseconds and offset).
func lexNumberOrDate(src string, start int) (token, int, error) {
	i := start
	if src[i] == '-' || src[i] == '+' {
		i++
	}
	digitsStart := i
	for i < len(src) && isDigit(src[i]) {
		i++
	}
	// A date is exactly four digits, unsigned, followed by -MM-DD.
	if i-digitsStart == 4 && digitsStart == start && i < len(src) && src[i] == '-' {
		return lexDate(src, start)
	}
	if i < len(src) && src[i] == '.' && i+1 < len(src) && isDigit(src[i+1]) {
		i++
		for i < len(src) && isDigit(src[i]) {
			i++
		}
	}
	if i < len(src) && isIdentPart(src[i]) {
		// 12abc: Salesforce sees a malformed number.
		return token{}, 0, noViable(src, i)
	}
	return token{kind: tokNumber, text: src[start:i], pos: start}, i, nil
}

func lexDate(src string, start int) (token, int, error) {
	i := start
	for i < len(src) && (isDigit(src[i]) || strings.IndexByte("-:T.Z+", src[i]) >= 0) {
		i++
	}
	text := src[start:i]
	if len(text) == len("2006-01-02") {
		if _, err := time.Parse("2006-01-02", text); err != nil {
			return token{}, 0, malformed(start, "line 1:%d invalid date: %s", start, text)
		}
		return token{kind: tokDate, text: text, pos: start}, i, nil
	}
	if _, err := parseDateTime(text); err != nil {
		return token{}, 0, malformed(start, "line 1:%d invalid datetime: %s", start, text)
	}
	return token{kind: tokDateTime, text: text, pos: start}, i, nil
}

// dateTimeLayouts are the datetime literal forms SOQL accepts: UTC with Z or an offset,
// with or without milliseconds.
var dateTimeLayouts = []string{
	"2006-01-02T15:04:05Z",
	"2006-01-02T15:04:05.000Z",
	"2006-01-02T15:04:05-07:00",
	"2006-01-02T15:04:05.000-07:00",
}

func parseDateTime(s string) (time.Time, error) {
	var err error
	for _, layout := range dateTimeLayouts {
		var t time.Time
		if t, err = time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, err
}

// lexString reads a single-quoted string literal and decodes its escapes. \% and \_ decode to
// % and _; a LIKE pattern is compiled from the raw text, where they stay distinguishable from
// the wildcards.
func lexString(src string, start int) (token, int, error) {
	var b strings.Builder
	i := start + 1
	for i < len(src) {
		c := src[i]
		switch c {
		case '\'':
			return token{kind: tokString, text: src[start+1 : i], str: b.String(), pos: start}, i + 1, nil
		case '\\':
			if i+1 >= len(src) {
				return token{}, 0, malformed(len(src), "line 1:%d mismatched character '<EOF>' expecting '''", len(src))
			}
			e := src[i+1]
			switch e {
			case 'n', 'N':
				b.WriteByte('\n')
			case 'r', 'R':
				b.WriteByte('\r')
			case 't', 'T':
				b.WriteByte('\t')
			case 'b', 'B':
				b.WriteByte('\b')
			case 'f', 'F':
				b.WriteByte('\f')
			case '"', '\'', '\\', '%', '_':
				b.WriteByte(e)
			case 'u', 'U':
				if i+6 > len(src) {
					return token{}, 0, illegalEscape(src, start, i)
				}
				n, err := strconv.ParseUint(src[i+2:i+6], 16, 32)
				if err != nil {
					return token{}, 0, illegalEscape(src, start, i)
				}
				b.WriteRune(rune(n))
				i += 6
				continue
			default:
				return token{}, 0, illegalEscape(src, start, i)
			}
			i += 2
		default:
			b.WriteByte(c)
			i++
		}
	}
	return token{}, 0, malformed(len(src), "line 1:%d mismatched character '<EOF>' expecting '''", len(src))
}

func illegalEscape(src string, start, at int) *Error {
	end := strings.IndexByte(src[at+1:], '\'')
	lit := src[start:]
	if end >= 0 {
		lit = src[start : at+1+end+1]
	}
	seq := src[at:min(at+2, len(src))]
	return malformed(at, "Invalid string literal %s. Illegal character sequence '%s' in string literal.", lit, seq)
}

package main

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
)

// File is what noongen reads from one .thrift file: its Go namespace, its
// structs, and its service block.
type File struct {
	// Path is the file as named on the command line, for errors.
	Path string
	// Prefix is the service prefix of its methods: the file's base name in
	// lower case ("room" for idl/room.thrift).
	Prefix string
	// Namespace is the file's `namespace go` ("room", or "a.b"), "" when
	// it has none.
	Namespace string
	// Structs are the structs, unions and exceptions the file declares.
	Structs map[string]bool
	// Service is the file's service block, nil when it has none.
	Service *Service
	// span is the service block's bytes in the source, from its first
	// comment to its closing brace, for Strip.
	span [2]int
}

// GoPackage returns the Go package name thrift gives the file's code: the
// last element of the namespace.
func (f *File) GoPackage() string {
	return f.Namespace[strings.LastIndex(f.Namespace, ".")+1:]
}

// GoDir returns the directory of that package below thrift's output
// directory.
func (f *File) GoDir() string {
	return strings.ReplaceAll(f.Namespace, ".", "/")
}

// RPCPackage returns the name of the package noongen writes for the file:
// the thrift package's name and "rpc" (roomrpc).
func (f *File) RPCPackage() string { return f.GoPackage() + "rpc" }

// RPCDir returns the directory of that package below thrift's output
// directory: inside the thrift package's (room/roomrpc).
func (f *File) RPCDir() string { return f.GoDir() + "/" + f.RPCPackage() }

// Service is one `service Name { ... }` block.
type Service struct {
	Name    string
	Line    int
	Methods []*Method
}

// Method is one method of a service block.
type Method struct {
	Name string
	Line int
	// Doc is the comment before the method, one element per line, without
	// comment markers.
	Doc []string
	// Req and Reply are the request and reply structs, "" for raw bytes
	// (binary).
	Req, Reply string
}

// Raw reports whether m takes and returns raw bytes.
func (m *Method) Raw() bool { return m.Req == "" }

var (
	// goNameRE is what a method or struct name must look like: an exported
	// Go identifier that thrift's Go generator leaves as it is.
	goNameRE = regexp.MustCompile(`^[A-Z][A-Za-z0-9]*$`)
	// prefixRE is the service-name grammar of the wire ([a-z][a-z0-9_-]{0,63}).
	prefixRE = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,63}$`)
	// namespaceRE is a Go namespace: dot-separated lower-case identifiers.
	namespaceRE = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$`)
)

// Parse reads the namespace, the structs and the service block of one
// .thrift file. Only the subset noon's service blocks use is understood:
//
//	service Name {
//	  Reply Method(1: Request req)
//	  binary Raw(1: binary payload)
//	}
//
// Anything else in a service block is an error naming its line.
func Parse(path string, src []byte) (*File, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, fmt.Errorf("%s:%v", path, err)
	}
	base := strings.TrimSuffix(filepath.Base(path), ".thrift")
	f := &File{Path: path, Prefix: strings.ToLower(base), Structs: map[string]bool{}}
	p := &parser{f: f, toks: toks}
	if err := p.file(); err != nil {
		return nil, err
	}
	if f.Service == nil {
		return f, nil
	}
	if f.Namespace == "" {
		return nil, p.errorf(f.Service.Line, "service %s: the file has no `namespace go`: the generated code goes in that package", f.Service.Name)
	}
	if !prefixRE.MatchString(f.Prefix) {
		return nil, p.errorf(f.Service.Line, "service %s: the file name %q is the method prefix and must match [a-z][a-z0-9_-]{0,63}", f.Service.Name, base)
	}
	for _, m := range f.Service.Methods {
		if err := p.check(m); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// check resolves m's request and reply types against the file's structs:
// "binary" becomes "" (raw bytes).
func (p *parser) check(m *Method) error {
	where := fmt.Sprintf("service %s: method %s", p.f.Service.Name, m.Name)
	for _, side := range []struct {
		what string
		typ  *string
	}{{"request", &m.Req}, {"reply", &m.Reply}} {
		switch t := *side.typ; {
		case t == "binary":
			*side.typ = ""
		case p.f.Structs[t]:
			if !goNameRE.MatchString(t) || strings.HasPrefix(t, "New") || strings.HasSuffix(t, "Args") || strings.HasSuffix(t, "Result") {
				return p.errorf(m.Line, "%s: %s struct %s: thrift's Go generator renames it; name it [A-Z][A-Za-z0-9]*, not starting with New nor ending in Args or Result", where, side.what, t)
			}
		default:
			return p.errorf(m.Line, "%s: %s type %s is not a struct of %s: a method takes and returns a struct of its file, or binary (raw bytes)", where, side.what, t, filepath.Base(p.f.Path))
		}
	}
	if (m.Req == "") != (m.Reply == "") {
		return p.errorf(m.Line, "%s: binary is raw bytes both ways: a method takes and returns binary, or neither", where)
	}
	return nil
}

type parser struct {
	f    *File
	toks []token
	i    int
}

func (p *parser) errorf(line int, format string, args ...any) error {
	return fmt.Errorf("%s:%d: %s", p.f.Path, line, fmt.Sprintf(format, args...))
}

// peek returns the next token without consuming it; at the end, an eof
// token on the last line.
func (p *parser) peek() token {
	if p.i < len(p.toks) {
		return p.toks[p.i]
	}
	line := 1
	if len(p.toks) > 0 {
		line = p.toks[len(p.toks)-1].line
	}
	return token{kind: tokEOF, line: line}
}

func (p *parser) next() token {
	t := p.peek()
	if p.i < len(p.toks) {
		p.i++
	}
	return t
}

// expect consumes a punctuation token s, or fails saying what was wanted.
func (p *parser) expect(s, what string) (token, error) {
	t := p.next()
	if t.kind != tokPunct || t.text != s {
		return t, p.errorf(t.line, "expected %q %s, got %s", s, what, t)
	}
	return t, nil
}

// ident consumes an identifier, or fails saying what was wanted.
func (p *parser) ident(what string) (token, error) {
	t := p.next()
	if t.kind != tokIdent {
		return t, p.errorf(t.line, "expected %s, got %s", what, t)
	}
	return t, nil
}

// file walks the top level: it reads namespaces, struct names and service
// blocks and steps over everything else, braces balanced.
func (p *parser) file() error {
	depth := 0
	for {
		t := p.next()
		switch {
		case t.kind == tokEOF:
			if depth != 0 {
				return p.errorf(t.line, "unbalanced braces: %d { left open at the end of the file", depth)
			}
			return nil
		case t.kind == tokPunct && t.text == "{":
			depth++
		case t.kind == tokPunct && t.text == "}":
			if depth == 0 {
				return p.errorf(t.line, "unbalanced braces: } without {")
			}
			depth--
		case depth > 0 || t.kind != tokIdent:
		case t.text == "namespace":
			lang, err := p.ident("a language after namespace")
			if err != nil {
				return err
			}
			ns, err := p.ident("a namespace name")
			if err != nil {
				return err
			}
			if lang.text != "go" {
				continue
			}
			if !namespaceRE.MatchString(ns.text) {
				return p.errorf(ns.line, "namespace go %q: want lower-case Go package names separated by dots", ns.text)
			}
			p.f.Namespace = ns.text
		case t.text == "struct" || t.text == "union" || t.text == "exception":
			name, err := p.ident("a name after " + t.text)
			if err != nil {
				return err
			}
			p.f.Structs[name.text] = true
		case t.text == "service":
			if p.f.Service != nil {
				return p.errorf(t.line, "a second service block (%s is at line %d): one service per file, named by the file", p.f.Service.Name, p.f.Service.Line)
			}
			s, err := p.service(t)
			if err != nil {
				return err
			}
			p.f.Service = s
			p.f.span = [2]int{t.pos, p.toks[p.i-1].pos + 1}
			if len(t.comments) > 0 {
				p.f.span[0] = t.comments[0].pos
			}
		}
	}
}

// service parses a service block; the keyword is consumed.
func (p *parser) service(kw token) (*Service, error) {
	name, err := p.ident("a service name")
	if err != nil {
		return nil, err
	}
	s := &Service{Name: name.text, Line: kw.line}
	if t := p.peek(); t.kind == tokIdent && t.text == "extends" {
		return nil, p.errorf(t.line, "service %s: extends is not supported: declare every method in the block", s.Name)
	}
	open, err := p.expect("{", "to open service "+s.Name)
	if err != nil {
		return nil, err
	}
	prevLine := open.line // a comment on the line a method ends on is not the next one's doc
	seen := map[string]int{}
	for {
		t := p.peek()
		if t.kind == tokPunct && t.text == "}" {
			p.next()
			break
		}
		if t.kind == tokEOF {
			return nil, p.errorf(t.line, "service %s: missing } (the block opens at line %d)", s.Name, open.line)
		}
		m, end, err := p.method(s.Name)
		if err != nil {
			return nil, err
		}
		if first, dup := seen[m.Name]; dup {
			return nil, p.errorf(m.Line, "service %s: method %s is declared twice (first at line %d)", s.Name, m.Name, first)
		}
		seen[m.Name] = m.Line
		m.Doc = docOf(t.comments, prevLine)
		s.Methods = append(s.Methods, m)
		prevLine = end
	}
	if len(s.Methods) == 0 {
		return nil, p.errorf(s.Line, "service %s has no methods", s.Name)
	}
	return s, nil
}

// method parses one method of service svc and returns it with the line of
// its last token.
func (p *parser) method(svc string) (*Method, int, error) {
	start := p.peek()
	if start.kind == tokIdent && start.text == "oneway" {
		return nil, 0, p.errorf(start.line, "service %s: oneway is not supported: every method replies", svc)
	}
	ret, err := p.typ(svc, "a reply type")
	if err != nil {
		return nil, 0, err
	}
	name, err := p.ident("a method name")
	if err != nil {
		return nil, 0, err
	}
	where := fmt.Sprintf("service %s: method %s", svc, name.text)
	if !goNameRE.MatchString(name.text) {
		return nil, 0, p.errorf(name.line, "%s: a method name is an upper-case letter then letters and digits ([A-Z][A-Za-z0-9]*)", where)
	}
	if _, err := p.expect("(", "after method "+name.text); err != nil {
		return nil, 0, err
	}
	var args []string
	for {
		t := p.peek()
		if t.kind == tokPunct && t.text == ")" {
			break
		}
		if t.kind == tokEOF {
			return nil, 0, p.errorf(t.line, "%s: missing )", where)
		}
		arg, err := p.field(where)
		if err != nil {
			return nil, 0, err
		}
		args = append(args, arg)
	}
	end := p.next() // ")"
	if t := p.peek(); t.kind == tokIdent && t.text == "throws" {
		return nil, 0, p.errorf(t.line, "%s: throws is not supported: errors are wire errors (<code>: <text>)", where)
	}
	if t := p.peek(); t.kind == tokPunct && (t.text == "," || t.text == ";") {
		end = p.next()
	}
	if len(args) != 1 {
		return nil, 0, p.errorf(name.line, "%s: takes %d arguments, want exactly one (a request struct, or binary)", where, len(args))
	}
	return &Method{Name: name.text, Line: name.line, Req: args[0], Reply: ret.text}, end.line, nil
}

// typ parses a type: a name; containers are refused.
func (p *parser) typ(svc, what string) (token, error) {
	t, err := p.ident(what)
	if err != nil {
		return t, fmt.Errorf("%w (service %s)", err, svc)
	}
	if n := p.peek(); n.kind == tokPunct && n.text == "<" {
		return t, p.errorf(t.line, "service %s: container type %s<...> is not supported: a method takes and returns a struct, or binary", svc, t.text)
	}
	if t.text == "void" {
		return t, p.errorf(t.line, "service %s: void is not supported: a method replies a struct (an empty one if it has nothing to say), or binary", svc)
	}
	return t, nil
}

// field parses one argument, "1: Type name", with an optional requiredness
// and a trailing "," or ";", and returns its type.
func (p *parser) field(where string) (string, error) {
	t := p.peek()
	if t.kind == tokNumber {
		p.next()
		if _, err := p.expect(":", "after the field id "+t.text+" ("+where+")"); err != nil {
			return "", err
		}
	}
	if t := p.peek(); t.kind == tokIdent && (t.text == "required" || t.text == "optional") {
		p.next()
	}
	typ, err := p.typ(where, "an argument type")
	if err != nil {
		return "", err
	}
	name, err := p.ident("an argument name (" + where + ")")
	if err != nil {
		return "", err
	}
	switch t := p.peek(); {
	case t.kind == tokPunct && t.text == "=":
		return "", p.errorf(t.line, "%s: argument defaults are not supported", where)
	case t.kind == tokPunct && (t.text == "," || t.text == ";"):
		p.next()
	case t.kind == tokPunct && t.text == ")":
	default:
		return "", p.errorf(t.line, "%s: expected \",\" or \")\" after argument %s, got %s", where, name.text, t)
	}
	return typ.text, nil
}

// docOf returns the lines of the comments before a token, leaving out one
// that starts on line prev (a trailing comment of the previous method).
func docOf(cs []comment, prev int) []string {
	var out []string
	for _, c := range cs {
		if c.line == prev {
			continue
		}
		out = append(out, c.lines...)
	}
	return out
}

// Token kinds.
const (
	tokEOF = iota
	tokIdent
	tokNumber
	tokString
	tokPunct
)

type token struct {
	kind int
	text string
	line int
	pos  int // byte offset in the source
	// comments are the comments between the previous token and this one.
	comments []comment
}

func (t token) String() string {
	switch t.kind {
	case tokEOF:
		return "the end of the file"
	case tokString:
		return "string " + t.text
	}
	return fmt.Sprintf("%q", t.text)
}

// comment is one comment: the line it starts on and its text lines.
type comment struct {
	line  int
	pos   int // byte offset in the source
	lines []string
}

// lex splits src into tokens, attaching comments to the token after them.
// Errors are "<line>: <text>".
func lex(src []byte) ([]token, error) {
	var (
		toks    []token
		pending []comment
		line    = 1
	)
	s := string(src)
	i := 0
	// emit appends the token s[i:end] with the comments before it.
	emit := func(kind, end int) {
		toks = append(toks, token{kind: kind, text: s[i:end], line: line, pos: i, comments: pending})
		pending = nil
		i = end
	}
	// word returns the end of the identifier or number starting at i.
	word := func() int {
		j := i + 1
		for j < len(s) && (isIdentStart(s[j]) || isDigit(s[j]) || s[j] == '.') {
			j++
		}
		return j
	}
	for i < len(s) {
		c := s[i]
		switch {
		case c == '\n':
			line++
			i++
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case c == '#' || strings.HasPrefix(s[i:], "//"):
			j := strings.IndexByte(s[i:], '\n')
			if j < 0 {
				j = len(s) - i
			}
			text := strings.TrimPrefix(strings.TrimPrefix(s[i:i+j], "#"), "//")
			pending = append(pending, comment{line: line, pos: i, lines: []string{trimComment(text)}})
			i += j
		case strings.HasPrefix(s[i:], "/*"):
			j := strings.Index(s[i+2:], "*/")
			if j < 0 {
				return nil, fmt.Errorf("%d: unterminated /* comment", line)
			}
			body := s[i+2 : i+2+j]
			pending = append(pending, comment{line: line, pos: i, lines: blockLines(body)})
			line += strings.Count(body, "\n")
			i += j + 4
		case c == '"' || c == '\'':
			j := i + 1
			for j < len(s) && s[j] != c {
				if s[j] == '\\' {
					j++
				}
				if j < len(s) && s[j] == '\n' {
					return nil, fmt.Errorf("%d: unterminated string", line)
				}
				j++
			}
			if j >= len(s) {
				return nil, fmt.Errorf("%d: unterminated string", line)
			}
			emit(tokString, j+1)
		case isIdentStart(c):
			emit(tokIdent, word())
		case isDigit(c) || (c == '-' || c == '+') && i+1 < len(s) && isDigit(s[i+1]):
			emit(tokNumber, word())
		case strings.IndexByte("{}()<>[],;:=", c) >= 0:
			emit(tokPunct, i+1)
		default:
			return nil, fmt.Errorf("%d: unexpected character %q", line, c)
		}
	}
	return toks, nil
}

func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// trimComment drops one space after a comment marker and trailing blanks.
func trimComment(s string) string {
	return strings.TrimRight(strings.TrimPrefix(s, " "), " \t\r")
}

// blockLines returns the text lines of a /* */ comment, without the
// leading " * " of each line and blank first and last lines.
func blockLines(body string) []string {
	body = strings.TrimPrefix(body, "*") // /** doc comments */
	var out []string
	for _, l := range strings.Split(body, "\n") {
		l = strings.TrimSpace(l)
		l = strings.TrimPrefix(l, "*")
		out = append(out, trimComment(l))
	}
	for len(out) > 0 && out[0] == "" {
		out = out[1:]
	}
	for len(out) > 0 && out[len(out)-1] == "" {
		out = out[:len(out)-1]
	}
	return out
}

// Strip returns src, f's source, with its service block (and the comments
// before it) blanked out, lines kept: what thrift compiles, so that it
// writes the structs only and noongen the methods. Thrift's Go generator
// has no option to skip a service's client and processor code.
func Strip(src []byte, f *File) []byte {
	out := append([]byte(nil), src...)
	if f.Service == nil {
		return out
	}
	for i := f.span[0]; i < f.span[1]; i++ {
		if out[i] != '\n' {
			out[i] = ' '
		}
	}
	return out
}

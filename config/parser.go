package config

// node is one statement: a keyword, its arguments on the same line, and the block that follows it
// (on the same line or the next one), if any.
type node struct {
	pos      Pos
	kw       string
	args     []string
	block    bool
	children []*node
}

// maxDepth bounds block nesting; keepalived's deepest real nesting is 4 (virtual_server >
// real_server > HTTP_GET > url).
const maxDepth = 16

type parser struct {
	d     *diags
	toks  []token
	files []string
	i     int
	// Slabs: nodes and their arguments are allocated in chunks, not one by one.
	nodes []node
	words []string
}

func (p *parser) newNode(pos Pos, kw string) *node {
	if len(p.nodes) == cap(p.nodes) {
		p.nodes = make([]node, 0, min(1024, max(16, 2*cap(p.nodes))))
	}
	p.nodes = append(p.nodes, node{pos: pos, kw: kw})
	return &p.nodes[len(p.nodes)-1]
}

// args returns the words toks[i:j] as a slice carved from the words slab.
func (p *parser) args(i, j int) []string {
	n := j - i
	if n == 0 {
		return nil
	}
	if cap(p.words)-len(p.words) < n {
		p.words = make([]string, 0, max(min(4096, 2*cap(p.words)), 32, n))
	}
	start := len(p.words)
	for _, t := range p.toks[i:j] {
		p.words = append(p.words, t.text)
	}
	return p.words[start:len(p.words):len(p.words)]
}

func (p *parser) pos(t token) Pos { return Pos{File: p.files[t.file], Line: int(t.line)} }

// parseTree turns a token stream into statements.
func parseTree(d *diags, toks []token, files []string) []*node {
	p := &parser{d: d, toks: toks, files: files}
	var top []*node
	for p.i < len(p.toks) {
		top = p.statements(top, 0)
		if p.i < len(p.toks) { // a stray '}' at top level
			t := p.toks[p.i]
			p.d.errorf(p.pos(t), "", "unexpected '}' without a matching '{'")
			p.i++
		}
	}
	return top
}

// statements parses statements until a '}' (left unconsumed) or the end of input.
func (p *parser) statements(out []*node, depth int) []*node {
	for p.i < len(p.toks) {
		t := p.toks[p.i]
		switch t.kind {
		case tokRBrace:
			return out
		case tokLBrace:
			// A '{' that no keyword owns: after a block, or a second '{'.
			p.d.errorf(p.pos(t), "", "unexpected '{' without a keyword")
			p.i++
			p.block(&node{pos: p.pos(t), kw: "{"}, depth+1)
			continue
		}
		n := p.newNode(p.pos(t), t.text)
		p.i++
		first := p.i
		for p.i < len(p.toks) {
			a := p.toks[p.i]
			if a.kind != tokWord || a.bol {
				break
			}
			p.i++
		}
		n.args = p.args(first, p.i)
		if p.i < len(p.toks) && p.toks[p.i].kind == tokLBrace {
			p.i++
			p.block(n, depth+1)
		}
		out = append(out, n)
	}
	return out
}

// block parses the inside of a block whose '{' was just consumed, and its '}'.
func (p *parser) block(n *node, depth int) {
	n.block = true
	if depth > maxDepth {
		p.d.errorf(n.pos, n.kw, "blocks nested deeper than %d", maxDepth)
		p.skipBlock(n)
		return
	}
	n.children = p.statements(n.children, depth)
	if p.i >= len(p.toks) {
		p.d.errorf(n.pos, n.kw, "block opened here is never closed (missing '}')")
		return
	}
	p.i++ // the '}'
}

// skipBlock skips to the '}' matching an already consumed '{', without recursion.
func (p *parser) skipBlock(n *node) {
	depth := 1
	for p.i < len(p.toks) {
		switch p.toks[p.i].kind {
		case tokLBrace:
			depth++
		case tokRBrace:
			depth--
		}
		p.i++
		if depth == 0 {
			return
		}
	}
	p.d.errorf(n.pos, n.kw, "block opened here is never closed (missing '}')")
}

package controller

import (
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"testing"
)

// Every sentinel error of errors.go travels in a forwarded response, and
// the file lists them in the order of errorCodes: a new one added to the
// file but not to the table would reach a forwarding node as a bare
// message that errors.Is cannot match.
func TestSentinelsInForwardTableOrder(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var declared, table []string
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.VAR {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if name.Name != "errorCodes" {
					declared = append(declared, name.Name)
					continue
				}
				for _, e := range vs.Values[i].(*ast.CompositeLit).Elts {
					if id, ok := e.(*ast.Ident); ok && id.Name != "nil" {
						table = append(table, id.Name) // this package's: not context's or raft's
					}
				}
			}
		}
	}
	if len(declared) == 0 || !slices.Equal(declared, table) {
		t.Fatalf("errors.go declares\n%v\nerrorCodes lists\n%v", declared, table)
	}
}

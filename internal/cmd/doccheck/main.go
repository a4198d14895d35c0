// Command doccheck fails when a package of the module has no package doc
// or an exported identifier has no doc comment, so that `go doc` of any
// entry type is enough to use it. CI runs it over the module root:
//
//	go run ./internal/cmd/doccheck .
//
// It reads source only (go/parser, no type checking), skips _test.go
// files, testdata and hidden directories, and counts a doc comment on a
// const, var or type group as documenting every name in the group.
// Methods are checked only on exported receiver types, since others never
// appear in godoc.
package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

func main() {
	root := "."
	if len(os.Args) > 1 {
		root = os.Args[1]
	}
	n, err := run(os.Stdout, root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "doccheck:", err)
		os.Exit(2)
	}
	if n > 0 {
		fmt.Fprintf(os.Stderr, "doccheck: %d missing doc comments\n", n)
		os.Exit(1)
	}
}

// run reports every violation under root to w, one per line as
// "file:line: message", and returns how many it found.
func run(w io.Writer, root string) (int, error) {
	var problems []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		name := d.Name()
		if path != root && (name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
			return filepath.SkipDir
		}
		p, err := checkDir(path)
		problems = append(problems, p...)
		return err
	})
	sort.Strings(problems)
	for _, p := range problems {
		fmt.Fprintln(w, p)
	}
	return len(problems), err
}

// checkDir checks the one package (if any) whose non-test files are in dir.
func checkDir(dir string) ([]string, error) {
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, dir, func(fi fs.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, parser.ParseComments)
	if err != nil {
		return nil, err
	}
	var problems []string
	report := func(pos token.Pos, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("%s: %s", fset.Position(pos), fmt.Sprintf(format, args...)))
	}
	for _, pkg := range pkgs {
		var files []string
		hasDoc := false
		for fname, f := range pkg.Files {
			files = append(files, fname)
			if f.Doc != nil && strings.TrimSpace(f.Doc.Text()) != "" {
				hasDoc = true
			}
		}
		sort.Strings(files)
		if !hasDoc {
			report(pkg.Files[files[0]].Package, "package %s has no package doc", pkg.Name)
		}
		for _, fname := range files {
			checkFile(pkg.Files[fname], report)
		}
	}
	return problems, nil
}

func checkFile(f *ast.File, report func(token.Pos, string, ...any)) {
	for _, decl := range f.Decls {
		switch d := decl.(type) {
		case *ast.FuncDecl:
			if !d.Name.IsExported() || hasText(d.Doc) {
				continue
			}
			if d.Recv == nil {
				report(d.Pos(), "func %s has no doc comment", d.Name.Name)
				continue
			}
			if recv := receiverName(d.Recv.List[0].Type); ast.IsExported(recv) {
				report(d.Pos(), "method %s.%s has no doc comment", recv, d.Name.Name)
			}
		case *ast.GenDecl:
			if d.Tok == token.IMPORT {
				continue
			}
			// A documented group documents its members (the godoc convention
			// for enumerations); otherwise each spec needs its own comment.
			grouped := d.Lparen.IsValid() && hasText(d.Doc)
			for _, spec := range d.Specs {
				switch s := spec.(type) {
				case *ast.TypeSpec:
					if s.Name.IsExported() && !grouped && !hasText(d.Doc) && !hasText(s.Doc) {
						report(s.Pos(), "type %s has no doc comment", s.Name.Name)
					}
				case *ast.ValueSpec:
					if grouped || hasText(d.Doc) || hasText(s.Doc) || hasText(s.Comment) {
						continue
					}
					for _, n := range s.Names {
						if n.IsExported() {
							report(n.Pos(), "%s %s has no doc comment", d.Tok, n.Name)
						}
					}
				}
			}
		}
	}
}

func hasText(g *ast.CommentGroup) bool {
	return g != nil && strings.TrimSpace(g.Text()) != ""
}

// receiverName is the type name of a method receiver: T, *T, T[P] or *T[P].
func receiverName(e ast.Expr) string {
	for {
		switch x := e.(type) {
		case *ast.StarExpr:
			e = x.X
		case *ast.IndexExpr:
			e = x.X
		case *ast.IndexListExpr:
			e = x.X
		case *ast.Ident:
			return x.Name
		default:
			return ""
		}
	}
}

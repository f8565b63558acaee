package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Every relative link in the README and the guides names a file that exists
// and, when it has a #fragment, a heading of that file.
func TestDocLinksResolve(t *testing.T) {
	docs, err := filepath.Glob("docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files := append([]string{"README.md"}, docs...)
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	checked := 0
	for _, file := range files {
		text := readDoc(t, file)
		for _, m := range link.FindAllStringSubmatch(proseOf(text), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			path, fragment, _ := strings.Cut(target, "#")
			resolved := file
			if path != "" {
				resolved = filepath.Join(filepath.Dir(file), path)
				if _, err := os.Stat(resolved); err != nil {
					t.Errorf("%s links to %s: no such file", file, target)
					continue
				}
			}
			checked++
			if fragment == "" {
				continue
			}
			if !strings.HasSuffix(resolved, ".md") || !headingSlugs(readDoc(t, resolved))[fragment] {
				t.Errorf("%s links to %s: %s has no heading #%s", file, target, resolved, fragment)
			}
		}
	}
	if checked < len(docs) {
		t.Errorf("checked %d links, want at least one per guide (%d): is the README's index gone?", checked, len(docs))
	}
}

func readDoc(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// proseOf drops fenced code blocks, whose brackets are not links.
func proseOf(markdown string) string {
	var b strings.Builder
	fenced := false
	for _, line := range strings.Split(markdown, "\n") {
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
			continue
		}
		if !fenced {
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// headingSlugs returns the anchors GitHub gives the headings of a document.
func headingSlugs(markdown string) map[string]bool {
	slugs := map[string]bool{}
	drop := regexp.MustCompile(`[^\p{L}\p{N}\- _]`)
	for _, line := range strings.Split(proseOf(markdown), "\n") {
		if !strings.HasPrefix(line, "#") {
			continue
		}
		heading := strings.TrimSpace(strings.TrimLeft(line, "#"))
		slug := strings.ReplaceAll(strings.ToLower(drop.ReplaceAllString(heading, "")), " ", "-")
		slugs[slug] = true
	}
	return slugs
}

package mimi

import (
	"strings"
	"testing"
)

// expand replaces each placeholder once, left to right, exactly as a
// single-pass strings.Replacer over both placeholders does.
func TestExpandSinglePass(t *testing.T) {
	ids := []string{"a.example/r/clubhouse", "", "x{roomId}y", "{targetUser}", "{"}
	templates := []string{
		"https://a.example/v1/notify/{roomId}",
		"https://a.example/v1/keyMaterial/{targetUser}",
		"no placeholder",
		"",
		"{roomId}{targetUser}{roomId}",
		"{{roomId}}",
		"{roomI{roomId}",
		"{",
		"}{",
		"{targetUser",
		"tail{",
	}
	for _, id := range ids {
		r := strings.NewReplacer("{targetUser}", id, "{roomId}", id)
		for _, tpl := range templates {
			if got, want := expand(tpl, id), r.Replace(tpl); got != want {
				t.Errorf("expand(%q, %q) = %q, want %q", tpl, id, got, want)
			}
		}
	}
}

func BenchmarkExpand(b *testing.B) {
	for b.Loop() {
		expand("https://a.example/v1/submitMessage/{roomId}", "a.example/r/clubhouse")
	}
}

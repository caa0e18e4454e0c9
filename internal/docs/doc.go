// Package docs checks the project's documentation against its code: every
// Go snippet in the README must stand, line for line, in a Go file that is
// compiled and tested, so the README cannot drift from the code.
package docs

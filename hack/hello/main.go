// hello: a static test program for the devstack's real node (no shell, no libc).
//
//	hello                 print a line, then serve HTTP on :8080 ("hello from <hostname>")
//	hello say WORDS...    print WORDS and exit (for exec)
//	hello get URL         GET URL (https without verification), print the status and body, exit 0 on any HTTP answer
//	hello touch PATH      create PATH (exit 1 with the error if that fails)
package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "say":
			fmt.Println(strings.Join(os.Args[2:], " "))
			return
		case "get":
			get(os.Args[2])
			return
		case "touch":
			if err := os.WriteFile(os.Args[2], []byte("x"), 0o644); err != nil {
				fmt.Println("touch failed:", err)
				os.Exit(1)
			}
			fmt.Println("touched", os.Args[2])
			return
		}
	}
	host, _ := os.Hostname()
	fmt.Printf("hello from %s uid=%d\n", host, os.Getuid())
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s\n", host)
	})
	if err := http.ListenAndServe(":8080", nil); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
}

func get(url string) {
	c := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
	}
	resp, err := c.Get(url)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	fmt.Printf("status %d\n%s\n", resp.StatusCode, body)
}

package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-resty/resty/v2"
)

// healthcheckCmd exits 0 when the URL answers 200 within 3 s: the container
// healthcheck of an image without a shell (docker-compose.yml).
func healthcheckCmd(ctx context.Context, args []string) error {
	if len(args) != 1 {
		return errors.New("usage: wxhub healthcheck http://127.0.0.1:9464/readyz")
	}
	resp, err := resty.New().SetTimeout(3 * time.Second).R().SetContext(ctx).Get(args[0])
	if err != nil {
		return err
	}
	if resp.StatusCode() != 200 {
		return fmt.Errorf("%s: %d %s", args[0], resp.StatusCode(), resp.String())
	}
	return nil
}

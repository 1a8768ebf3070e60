"""Every plot, HTML dashboard and widget the notebooks show. Computes nothing the tests need."""

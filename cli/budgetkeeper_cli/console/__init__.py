"""`budgetkeeper console`: the operators' web console, served from their own machine.

A Flask app on werkzeug's WSGI server. It reads and acts through the CLI's own code: the rows of
`report`, `status`, `audit`, `prices show` and `doctor` (its charts are the HTML report's SVG
macros, `templates/charts.html.j2`), and every suspend, restore, protect and unprotect is a run of
the enforcement workflow started as `budgetkeeper suspend ...` starts it (`ActionRequest`), with
the operator's STS identity as the actor; `budget set` is `set_budget`.

Safety: a random access token, printed at start, is required on every request (in the URL once,
then in an HttpOnly SameSite=Strict cookie); a state change is a POST carrying the page's CSRF
token, shown first on a confirmation page; `read_only` refuses every POST; every value is escaped
(jinja2 autoescape on every template) and a Content-Security-Policy allows no script at all.
"""

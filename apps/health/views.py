from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from apps.health.selectors import health_report


@never_cache
def healthz(request):
    report = health_report()
    return JsonResponse(report, status=200 if report["ok"] else 503)


@never_cache
def status_page(request):
    report = health_report()
    return render(request, "health/status.html", {"report": report}, status=200 if report["ok"] else 503)

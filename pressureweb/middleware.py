from django.http import HttpResponseBadRequest, JsonResponse


class RejectNulBytesMiddleware:
    """A NUL byte in the path or query can never be valid here, and PostgreSQL refuses it in text
    parameters (a 500 deep in a query); answer 400 at the door instead."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "\x00" in request.path or "%00" in request.META.get("QUERY_STRING", "") or any(
            "\x00" in value for values in request.GET.lists() for value in values[1]
        ):
            message = "NUL bytes are not allowed in URLs"
            if request.path.startswith("/api/"):
                return JsonResponse({"error": message}, status=400)
            return HttpResponseBadRequest(message, content_type="text/plain")
        return self.get_response(request)

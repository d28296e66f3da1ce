/*
 * What the flow nodes' edit dialogs share: the role choice (an LwM2M server asks devices / a BC66
 * modem is the device) showing only that role's fields, endpoint completion from the live
 * registrations, path completion from the object model filtered by what the node does, and field
 * validators. Loaded by lwm2m-server.html; the node definitions call it when a dialog opens.
 */
/* global RED, $ */
(function () {
    'use strict';
    RED.lwm2m = RED.lwm2m || {};

    function isInteger(v, min, max) {
        var s = String(v).trim();
        return /^-?\d+$/.test(s) && Number(s) >= min && Number(s) <= max;
    }
    var IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;

    /** LwM2M ids: objects and resources up to 65535, instances up to 65534 (65535 is reserved). */
    function validPath(v) {
        var m = /^\/?(\d+)(?:\/(\d+))?(?:\/(\d+))?(?:\/(\d+))?$/.exec(String(v).trim());
        if (!m) return false;
        return Number(m[1]) <= 65535 && (m[2] === undefined || Number(m[2]) <= 65534)
            && (m[3] === undefined || Number(m[3]) <= 65535) && (m[4] === undefined || Number(m[4]) <= 65535);
    }

    RED.lwm2m.valid = {
        port: function (v) { return isInteger(v, 1, 65535); },
        optionalPort: function (v) { return v === '' || v === undefined || isInteger(v, 1, 65535); },
        address: function (v) { return !v || IPV4.test(v) || (/^[0-9a-fA-F:.]+$/.test(v) && v.indexOf(':') >= 0 && v.split('::').length <= 2); },
        /** an empty path is allowed where msg.path may give it */
        path: function (v) { return !v || validPath(v); },
        paths: function (v) { return !v || String(v).split(/[\s,]+/).filter(Boolean).every(validPath); },
        optionalNumber: function (v) { return v === '' || v === undefined || (String(v).trim() !== '' && isFinite(Number(v))); },
        positiveInteger: function (v) { return isInteger(v, 1, Number.MAX_SAFE_INTEGER); },
    };

    /** The node's role: from its open dialog while it is edited, else as saved (older nodes: from the selector they use). */
    RED.lwm2m.roleOf = function (node) {
        var stack = RED.editor.getEditStack ? RED.editor.getEditStack() : [];
        var select = $('#node-input-role');
        if (stack.length && stack[0].id === node.id && select.length && select.val()) return select.val();
        return node.role || (node.modem ? 'device' : 'server');
    };

    var objectList = null;
    var objectCache = {};
    function objects() {
        if (!objectList) objectList = RED.lwm2m.objects().then(null, function () { objectList = null; return []; });
        return objectList;
    }
    function object(id) {
        if (!objectCache[id]) objectCache[id] = RED.lwm2m.object(null, id).then(null, function () { delete objectCache[id]; return null; });
        return objectCache[id];
    }

    function completion(value, label) {
        return { value: value, label: $('<div>').append($('<span>').text(value)).append($('<span style="float:right;opacity:.7">').text(label || '')) };
    }

    /** Completes /object/instance/resource paths: objects by id or name, then their resources doing `ops`. */
    function pathSearch(ops) {
        return function (value, done) {
            var m = /^\/?(\d+)\/(\d+)\/?(\d*)$/.exec(value);
            if (m) {
                object(m[1]).then(function (def) {
                    if (!def) return done([]);
                    done(def.resources.filter(function (r) {
                        return (!ops || (r.operations || '').indexOf(ops) >= 0) && String(r.id).indexOf(m[3]) === 0;
                    }).slice(0, 50).map(function (r) {
                        return completion('/' + m[1] + '/' + m[2] + '/' + r.id, r.name + (r.units ? ' (' + r.units + ')' : '') + ' ' + (r.operations || ''));
                    }));
                });
                return;
            }
            var q = value.replace(/^\//, '').toLowerCase();
            objects().then(function (list) {
                done(list.filter(function (o) { return !q || String(o.id).indexOf(q) === 0 || o.name.toLowerCase().indexOf(q) >= 0; })
                    .slice(0, 50).map(function (o) { return completion('/' + o.id + '/0/', o.name); }));
            });
        };
    }

    /**
     * Wires a flow node's dialog: `ops` is what the node does to a resource (R, W or E) for the path
     * completion. Rows with class lwm2m-role-server / lwm2m-role-device show for that role only.
     */
    RED.lwm2m.prepareDialog = function (node, ops) {
        var role = $('#node-input-role');
        role.val(RED.lwm2m.roleOf(node));
        // a new node: the only server (or, in the device role, the only modem) is chosen already, as the core MQTT nodes do
        if (!node.server && !node.modem) {
            var only = function (type) {
                var found = [];
                RED.nodes.eachConfig(function (n) { if (n.type === type) found.push(n.id); });
                return found.length === 1 ? found[0] : null;
            };
            var server = only('lwm2m-server');
            var modem = only('lwm2m-bc66');
            if (server) $('#node-input-server').val(server);
            if (modem) $('#node-input-modem').val(modem);
        }
        var show = function () {
            var device = role.val() === 'device';
            $('.lwm2m-role-server').toggle(!device);
            $('.lwm2m-role-device').toggle(device);
            // the other role's selector must not hold a value, nor be outlined red
            $('#node-input-server, #node-input-modem').trigger('change');
        };
        role.on('change', show);
        show();
        var endpoint = $('#node-input-endpoint');
        if (endpoint.length && endpoint.autoComplete) {
            endpoint.autoComplete({
                minLength: 0,
                search: function (value, done) {
                    RED.lwm2m.endpoints($('#node-input-server').val(), value).then(function (list) {
                        done(list.map(function (e) { return { value: e, label: e }; }));
                    }, function () { done([]); });
                },
            });
        }
        var path = $('#node-input-path');
        if (path.length && path.autoComplete) path.autoComplete({ minLength: 0, search: pathSearch(ops) });
    };

    /** On save: the node keeps the selector of its role only. */
    RED.lwm2m.saveDialog = function () {
        $($('#node-input-role').val() === 'device' ? '#node-input-server' : '#node-input-modem').val('');
    };
})();
